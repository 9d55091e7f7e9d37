"""Canonical usernames and passwords (RFC 8265 PRECIS), so one name is one account."""

from __future__ import annotations

from precis_i18n import get_profile
from precis_i18n.profile import Profile

# The name as shown: width-mapped and NFC, letter case as typed.
DISPLAY = get_profile("UsernameCasePreserved")
# The name as compared: the same, lower-cased, so "Alice" cannot impersonate "alice".
KEY = get_profile("UsernameCaseMapped")
PASSWORD = get_profile("OpaqueString")


class NotAllowed(ValueError):
    """Text that the PRECIS profile refuses (controls, unassigned or invisible characters)."""


def enforce_username(profile: Profile, text: str) -> str:
    """Apply a username profile to each space-separated part, joined by one space.

    RFC 8265 section 3.5 lets an application allow spaces by applying the profile to each
    part between them; runs of white space (tabs, no-break and ideographic spaces) become one.
    """
    parts = text.split()
    if not parts:
        raise NotAllowed("A username must not be empty.")
    try:
        return " ".join(profile.enforce(part) for part in parts)
    except UnicodeError as error:
        raise NotAllowed(str(error)) from error


def canonical_username(text: str) -> str:
    """Return the form of a username to store and show; raise NotAllowed if PRECIS refuses it."""
    return enforce_username(DISPLAY, text)


def username_key(text: str) -> str:
    """Return the key two spellings of one username share; raise NotAllowed if refused."""
    return enforce_username(KEY, text)


def lookup_key(text: str) -> str:
    """Return the key a login looks a name up by: its username key, or the text as typed.

    A refused text can never equal a stored key (every key is PRECIS output, which PRECIS
    accepts), so falling back to it finds nothing by key and leaves exact legacy names to match.
    """
    try:
        return username_key(text)
    except NotAllowed:
        return text


def canonical_password(text: str) -> str:
    """Return a password in the form that is hashed (RFC 8265 OpaqueString); raise NotAllowed."""
    try:
        result: str = PASSWORD.enforce(text)
    except UnicodeError as error:
        raise NotAllowed(str(error)) from error
    return result
