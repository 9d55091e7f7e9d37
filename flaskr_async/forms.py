"""The app's forms: field names, limits and the exact messages users see."""

from __future__ import annotations

from typing import Any

from quart_wtf import QuartForm
from wtforms import Field
from wtforms import PasswordField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms import ValidationError
from wtforms.validators import DataRequired
from wtforms.validators import InputRequired
from wtforms.validators import Length

USERNAME_MAX = 150
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # long passphrases are welcome; this only bounds hashing work
TITLE_MAX = 200
BODY_MAX_BYTES = 64 * 1024


def no_nul(_form: Any, field: Field) -> None:
    """Reject NUL characters, which PostgreSQL cannot store in text."""
    if "\x00" in (field.data or ""):
        raise ValidationError(f"{field.label.text} must not contain NUL characters.")


def body_size(_form: Any, field: Field) -> None:
    """Bound the body by its encoded size, the unit storage and bandwidth pay for."""
    if len((field.data or "").encode("utf-8", "surrogatepass")) > BODY_MAX_BYTES:
        raise ValidationError("Body must be at most 64 KiB.")


def username_field() -> StringField:
    """Return a required username field of bounded length."""
    return StringField(
        "Username",
        validators=[
            DataRequired("Username is required."),
            Length(
                max=USERNAME_MAX, message=f"Username must be at most {USERNAME_MAX} characters."
            ),
            no_nul,
        ],
    )


class RegisterForm(QuartForm):
    """A new account: no composition rules, no truncation (NIST SP 800-63B)."""

    username = username_field()
    password = PasswordField(
        "Password",
        validators=[
            InputRequired("Password is required."),
            Length(
                min=PASSWORD_MIN, message=f"Password must be at least {PASSWORD_MIN} characters."
            ),
            Length(
                max=PASSWORD_MAX, message=f"Password must be at most {PASSWORD_MAX} characters."
            ),
            no_nul,
        ],
    )


class LoginForm(QuartForm):
    """Credentials to check; any other problem is just a failed login."""

    username = username_field()
    password = PasswordField("Password", validators=[InputRequired("Password is required.")])


class PostForm(QuartForm):
    """A post's title and body."""

    title = StringField(
        "Title",
        validators=[
            DataRequired("Title is required."),
            Length(max=TITLE_MAX, message=f"Title must be at most {TITLE_MAX} characters."),
            no_nul,
        ],
    )
    # A form posted without a body field means an empty body, not NULL.
    body = TextAreaField("Body", default="", validators=[body_size, no_nul])


def first_error(form: QuartForm) -> str:
    """Return the first message, in field order, as Flaskr shows one error at a time."""
    return next(str(errors[0]) for errors in form.errors.values())
