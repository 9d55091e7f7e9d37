"""Device cookies: a browser that has logged in as a user is known to that user's throttle.

OWASP's "Slow Down Online Guessing Attacks with Device Cookies": after a successful login the
browser gets a signed cookie naming the user and a random device id. Its login attempts for that
user are limited by the device's own failures only, so failures from anywhere else (anyone who
types the user's name) never lock the user out of a browser they have used before.

Each entry also holds when the user's password last changed, as of that login: a change of
password forgets every browser known from before it (a thief's included).
"""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature
from itsdangerous import URLSafeSerializer
from quart import current_app
from quart import request
from quart import url_for
from werkzeug.sansio.response import Response

COOKIE_NAME = "flaskr_device"
MAX_AGE = 365 * 24 * 3600  # seconds: a year, like a "remember this browser" choice
MAX_USERS = 5  # accounts remembered per browser; the oldest is forgotten first
SALT = "flaskr_async.device-cookie"


def serializer() -> URLSafeSerializer:
    """Sign with SECRET_KEY, accepting the fallback keys while a key is rotated."""
    config = current_app.config
    keys = [*(config.get("SECRET_KEY_FALLBACKS") or []), config["SECRET_KEY"]]
    return URLSafeSerializer(keys, salt=SALT)  # the last key signs; every key verifies


Entry = tuple[str, float]  # the device id, and the password change it was remembered after


def remembered() -> dict[str, Entry]:
    """Return the users this browser has logged in as, mapped to its entry for each."""
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return {}
    try:
        entries = serializer().loads(cookie)
    except BadSignature:
        return {}
    if not isinstance(entries, list):
        return {}
    # Cookies from before password changes were tracked hold two items: as of no change (0).
    return {
        str(entry[0]): (str(entry[1]), float(entry[2]) if len(entry) == 3 else 0.0)
        for entry in entries
        if isinstance(entry, list)
        and len(entry) in (2, 3)
        and (len(entry) == 2 or isinstance(entry[2], int | float))
    }


def device_of(username: str, password_changed_at: float | None) -> str | None:
    """Return this browser's device id for a user it logged in as since the last password change.

    ``password_changed_at``: the user's, or None for an unknown user (never a known browser).
    """
    entry = remembered().get(username)
    if entry is None or password_changed_at is None or entry[1] != password_changed_at:
        return None
    return entry[0]


def remember(response: Response, username: str, password_changed_at: float) -> None:
    """Mark this browser as known to the user, on the response of a successful login."""
    entries = remembered()
    old = entries.pop(username, None)
    device = old[0] if old else secrets.token_urlsafe(16)
    entries[username] = (device, password_changed_at)  # the newest last: the oldest goes first
    kept = [[name, *entry] for name, entry in entries.items()][-MAX_USERS:]
    config = current_app.config
    response.set_cookie(
        COOKIE_NAME,
        serializer().dumps(kept),
        max_age=MAX_AGE,
        httponly=True,
        secure=bool(config["SESSION_COOKIE_SECURE"]),
        samesite=config["SESSION_COOKIE_SAMESITE"],
        path=url_for("auth.login"),  # sent with login attempts only
    )
