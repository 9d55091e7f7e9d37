"""The app's forms: field names, limits and the exact messages users see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import unicodedataplus as unicodedata  # pinned: the same answers on every Python
from quart_wtf import QuartForm
from wtforms import Field
from wtforms import PasswordField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms import ValidationError
from wtforms.validators import DataRequired
from wtforms.validators import InputRequired
from wtforms.validators import Length
from wtforms.validators import StopValidation

from flaskr_async.identity import NotAllowed
from flaskr_async.identity import canonical_password
from flaskr_async.identity import canonical_username

USERNAME_MAX = 150  # of the canonical form, at registration: it protects storage
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # long passphrases are welcome; this only bounds hashing work
# The most a username field reads, as typed: it bounds the work. Logins check nothing more, so
# older (Flaskr) names of any length log in; registration then limits the canonical form.
USERNAME_INPUT_MAX = 1024
TITLE_MAX = 200
BODY_MAX_BYTES = 64 * 1024
# The flash category of what a completed action reports: base.html shows it as a status, and
# any other message (a form's error) as an alert.
DONE = "info"

# What each form's body may be as sent (middleware/body_limits.py refuses more, before parsing):
# every character of every field at its limit, as UTF-8 percent-encoded, 12 bytes for the widest.
WIDEST_ENCODED_CHARACTER = 12  # 4 UTF-8 bytes, each percent-encoded as 3
OVERHEAD = 1024  # field names, separators and the CSRF token (about 90 bytes)


@dataclass(frozen=True)
class FormLimit:
    """The most a form's body can hold: bytes as sent, and fields (the CSRF token included)."""

    max_bytes: int
    max_fields: int


# The username as typed, not its canonical form: a login reads longer names than registration
# stores, and a name typed decomposed (NFD) is longer than the form it is stored in.
CREDENTIALS = FormLimit(
    (USERNAME_INPUT_MAX + PASSWORD_MAX) * WIDEST_ENCODED_CHARACTER + OVERHEAD, max_fields=3
)
POST = FormLimit(TITLE_MAX * WIDEST_ENCODED_CHARACTER + BODY_MAX_BYTES * 3 + OVERHEAD, max_fields=3)
PASSWORDS = FormLimit(2 * PASSWORD_MAX * WIDEST_ENCODED_CHARACTER + OVERHEAD, max_fields=4)
TOKEN_ONLY = FormLimit(OVERHEAD, max_fields=1)
# MAX_CONTENT_LENGTH may not be lower (settings.py): each form's limit can only lower it.
LARGEST_FORM_BYTES = max(limit.max_bytes for limit in (CREDENTIALS, POST, PASSWORDS, TOKEN_ONLY))


def no_nul(_form: Any, field: Field) -> None:
    """Reject NUL characters, which PostgreSQL cannot store in text."""
    if "\x00" in (field.data or ""):
        raise ValidationError(f"{field.label.text} must not contain NUL characters.")


# Shown as nothing, or as blank space: a text of only these says nothing (U+200B, U+202E).
# Marks (Mn, Me) show only on a character before them: alone, they say nothing either.
INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Mn", "Me"})
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, 16.0), whatever their
# category (unassigned ones too: the property reserves them for invisible characters), and
# the blank letters and symbols beside them: Hangul fillers, the Braille blank.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
BLANK = frozenset("\u2800")
INVISIBLE = BLANK | frozenset(
    chr(code) for first, last in DEFAULT_IGNORABLE for code in range(first, last + 1)
)
LINE_BREAKS_AND_TABS = frozenset("\t\n\r")


def is_visible(char: str) -> bool:
    """Tell whether a character shows as something (not blank, not invisible)."""
    return unicodedata.category(char) not in INVISIBLE_CATEGORIES and char not in INVISIBLE


def is_control(char: str) -> bool:
    """Tell whether a character is a C0 or C1 control (BEL, ESC, DEL, CSI...)."""
    category: str = unicodedata.category(char)
    return category == "Cc"


def required_visible(message: str) -> Callable[[Any, Field], None]:
    """Return a validator refusing, as empty, a text with no visible character."""

    def visible(_form: Any, field: Field) -> None:
        if not any(map(is_visible, field.data or "")):
            raise StopValidation(message)

    return visible


def no_controls(allowed: frozenset[str] = frozenset()) -> Callable[[Any, Field], None]:
    """Return a validator refusing control characters but the ``allowed`` ones."""

    def without_controls(_form: Any, field: Field) -> None:
        if any(is_control(char) and char not in allowed for char in field.data or ""):
            raise ValidationError(f"{field.label.text} must not contain control characters.")

    return without_controls


def blank_as_empty(text: str | None) -> str | None:
    """Store a body of only line breaks, tabs and spaces (visible or not) as empty."""
    refused = (is_control(char) and char not in LINE_BREAKS_AND_TABS for char in text or "")
    if text is None or any(map(is_visible, text)) or any(refused):
        return text  # a refused control is no blank: the validators say so
    return ""


def body_size(_form: Any, field: Field) -> None:
    """Bound the body by its encoded size, the unit storage and bandwidth pay for."""
    if len((field.data or "").encode("utf-8", "surrogatepass")) > BODY_MAX_BYTES:
        raise ValidationError("Body must be at most 64 KiB.")


def canonical_name(_form: Any, field: Field) -> None:
    """Replace the username by its canonical form (PRECIS), refusing what it does not allow."""
    try:
        field.data = canonical_username(field.data)
    except NotAllowed as error:
        raise ValidationError("Username contains characters that are not allowed.") from error


def allowed_password(_form: Any, field: Field) -> None:
    """Refuse a password whose canonical form (OpaqueString) is refused or too short."""
    try:
        canonical = canonical_password(field.data)
    except NotAllowed as error:
        raise ValidationError("Password contains characters that are not allowed.") from error
    # Counted after normalization: "é" typed as e + combining accent is one character.
    if len(canonical) < PASSWORD_MIN:
        raise ValidationError(f"Password must be at least {PASSWORD_MIN} characters.")


def at_most(name: str, limit: int, shown: int | None = None) -> Length:
    """Return a length limit whose message names the field and the limit users see."""
    return Length(max=limit, message=f"{name} must be at most {shown or limit} characters.")


def new_password_field(label: str) -> PasswordField:
    """Return a field for a password to store: the registration rules, the label in messages."""
    return PasswordField(
        label,
        validators=[
            InputRequired(f"{label} is required."),
            Length(
                min=PASSWORD_MIN, message=f"Password must be at least {PASSWORD_MIN} characters."
            ),
            at_most("Password", PASSWORD_MAX),
            no_nul,
            allowed_password,
        ],
    )


class RegisterForm(QuartForm):
    """A new account: no composition rules, no truncation (NIST SP 800-63B)."""

    username = StringField(
        "Username",
        validators=[
            DataRequired("Username is required."),
            # Bounds the normalization's work first; the stored limit applies to its result.
            at_most("Username", USERNAME_INPUT_MAX, shown=USERNAME_MAX),
            no_nul,
            canonical_name,
            at_most("Username", USERNAME_MAX),
        ],
    )
    password = new_password_field("Password")


def checked_password_field(label: str) -> PasswordField:
    """Return a field for a password to check: bounded work only, the label in messages."""
    return PasswordField(
        label,
        validators=[InputRequired(f"{label} is required."), at_most("Password", PASSWORD_MAX)],
    )


class LoginForm(QuartForm):
    """Credentials to check; any other problem is just a failed login."""

    username = StringField(
        "Username",
        validators=[
            DataRequired("Username is required."),
            at_most("Username", USERNAME_INPUT_MAX),
            no_nul,
        ],
    )
    password = checked_password_field("Password")


class PasswordChangeForm(QuartForm):
    """The password in use, to prove it is the user, and the one to use from now on."""

    current_password = checked_password_field("Current password")
    new_password = new_password_field("New password")


class PostForm(QuartForm):
    """A post's title and body."""

    title = StringField(
        "Title",
        validators=[
            DataRequired("Title is required."),
            required_visible("Title is required."),
            Length(max=TITLE_MAX, message=f"Title must be at most {TITLE_MAX} characters."),
            no_nul,
            no_controls(),
        ],
    )
    # A form posted without a body field means an empty body, not NULL. Line breaks and tabs
    # are a body's layout; other controls (a terminal's escapes, BEL) are no text.
    body = TextAreaField(
        "Body",
        default="",
        filters=[blank_as_empty],
        validators=[body_size, no_nul, no_controls(LINE_BREAKS_AND_TABS)],
    )


def first_error(form: QuartForm) -> str:
    """Return the first message, in field order, as Flaskr shows one error at a time."""
    return next(str(errors[0]) for errors in form.errors.values())
