"""Canonical usernames and passwords (RFC 8265 PRECIS), the same on every host and Python.

PRECIS reads character properties from a Unicode database. Python's own follows the running
Python (3.11 has Unicode 14.0, 3.13 has 15.1), so a text one host accepts another refused, and an
account registered through a newer Python could not log in through an older one. Here every host
reads the same pinned database (``unicodedataplus``, locked in pyproject.toml) and allows only
the code points Unicode 14.0 had assigned, the version of the oldest supported Python: case folding
(``str.casefold``, the running Python's) is stable for those in every later Unicode release
(Unicode's Case Folding Stability policy), as normalization is (Normalization Stability).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from typing import cast

import unicodedataplus
from precis_i18n import get_profile
from precis_i18n.profile import Profile

# Code points assigned after it are "unassigned" to PRECIS, so refused, on every Python. Raise it
# only with the oldest supported Python's Unicode version, and with a migration re-keying names.
REPERTOIRE = (14, 0)

# Unicode's White_Space property (PropList.txt): what separates the parts of a username. Fixed
# here rather than str.split()'s notion, which also splits at four control characters.
WHITE_SPACE = re.compile("[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


class NotAllowed(ValueError):
    """Text that the PRECIS profile refuses (controls, unassigned or invisible characters)."""


class FrozenRepertoire:
    """The ``unicodedata`` interface PRECIS reads: the pinned database, cut at ``REPERTOIRE``."""

    unidata_version = "{}.{}.0".format(*REPERTOIRE)

    @staticmethod
    def category(char: str) -> str:
        """Return the general category, "Cn" (unassigned) for a code point newer than the cut."""
        age = unicodedataplus.age(char)
        if age == "Unassigned" or tuple(map(int, age.split("."))) > REPERTOIRE:
            return "Cn"
        category: str = unicodedataplus.category(char)
        return category

    combining = staticmethod(unicodedataplus.combining)
    bidirectional = staticmethod(unicodedataplus.bidirectional)
    normalize = staticmethod(unicodedataplus.normalize)


@cache
def profile(name: str) -> Profile:
    """Return a PRECIS profile on the frozen repertoire (built on first use, not at import)."""
    # precis-i18n's stub names its own adapter class; it wraps any unicodedata-like object.
    return get_profile(name, unicodedata=cast(Any, FrozenRepertoire()))


# The name as shown: width-mapped and NFC, letter case as typed.
DISPLAY = "UsernameCasePreserved"
# The name as compared: the same, case-folded (RFC 8265 allows Unicode's toCaseFold, section
# 3.3.2): "ΟΔΟΣ", "οδος" and "οδοσ" are one name, as are "Straße" and "STRASSE".
KEY = "UsernameCaseMapped:CaseFold"
PASSWORD = "OpaqueString"


def enforce_username(profile_name: str, text: str) -> str:
    """Apply a username profile to each space-separated part, joined by one space.

    RFC 8265 section 3.5 lets an application allow spaces by applying the profile to each
    part between them; runs of white space (tabs, no-break and ideographic spaces) become one.
    """
    parts = [part for part in WHITE_SPACE.split(text) if part]
    if not parts:
        raise NotAllowed("A username must not be empty.")
    try:
        return " ".join(profile(profile_name).enforce(part) for part in parts)
    except UnicodeError as error:
        raise NotAllowed(str(error)) from error


def canonical_username(text: str) -> str:
    """Return the form of a username to store and show; raise NotAllowed if PRECIS refuses it."""
    return enforce_username(DISPLAY, text)


def username_key(text: str) -> str:
    """Return the key every spelling of one username shares; raise NotAllowed if refused.

    Folded from the canonical form, so a name has a key exactly when it may be registered
    (case folding alone would turn a refused ligature, "\ufb01", into an allowed "fi").
    """
    return enforce_username(KEY, canonical_username(text))


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
        result: str = profile(PASSWORD).enforce(text)
    except UnicodeError as error:
        raise NotAllowed(str(error)) from error
    return result


def legacy_password_forms(text: str) -> list[str]:
    """Return the forms an older hash may hold of a password the repertoire now refuses.

    Before the repertoire was frozen, a newer Python hashed its OpaqueString form (non-ASCII
    spaces mapped, NFC) of characters it knew; before passwords were normalized, the text as
    typed was hashed. Both forms are computed here with the pinned database, so every host
    checks the same candidates.
    """
    # The mapping OpaqueString itself applies (precis-i18n's), then NFC, on the pinned database.
    spaced = profile(PASSWORD).base.ucd.map_nonascii_space_to_ascii(text)
    nfc = unicodedataplus.normalize("NFC", spaced)
    return list(dict.fromkeys([nfc, text]))
