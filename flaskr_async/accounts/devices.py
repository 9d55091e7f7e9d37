"""Device cookies: a browser that has logged in as a user is known to that user's throttle.

OWASP's "Slow Down Online Guessing Attacks with Device Cookies": after a successful login the
browser gets a signed cookie naming the user and a random device id. Its login attempts for that
user are limited by the device's own failures only, so failures from anywhere else (anyone who
types the user's name) never lock the user out of a browser they have used before.

Each entry also holds when the user's password last changed, as of that login: a change of
password forgets every browser known from before it (a thief's included).
"""

from __future__ import annotations

import hashlib
import secrets

from itsdangerous import BadSignature
from itsdangerous import URLSafeSerializer
from quart import current_app
from quart import request
from quart import url_for
from werkzeug.sansio.response import Response

from flaskr_async.db import Row

COOKIE_NAME = "flaskr_device"
MAX_AGE = 365 * 24 * 3600  # seconds: a year, like a "remember this browser" choice
MAX_USERS = 5  # accounts remembered per browser; the oldest is forgotten first
SALT = "flaskr_async.device-cookie"
KEY_LENGTH = 32  # hex digits of a name's digest: 128 bits


def name_key(username: str) -> str:
    """Return the cookie's key for a name: a digest, the same size whatever the name's length.

    The name itself made the cookie unbounded: an older name logs in at up to 1,024
    characters, 6 bytes each as JSON, and a cookie over 4 KB is dropped by browsers and
    refused by a proxy's header buffer (nginx: 502).
    """
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:KEY_LENGTH]


def serializer() -> URLSafeSerializer:
    """Sign with SECRET_KEY, accepting the fallback keys while a key is rotated."""
    config = current_app.config
    keys = [*(config.get("SECRET_KEY_FALLBACKS") or []), config["SECRET_KEY"]]
    return URLSafeSerializer(keys, salt=SALT)  # the last key signs; every key verifies


Entry = tuple[str, float, int]  # the device id; the password change and user it was issued for


def remembered() -> dict[str, Entry]:
    """Return the users this browser has logged in as (by name_key), mapped to their entries."""
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return {}
    try:
        entries = serializer().loads(cookie)
    except BadSignature:
        return {}
    if not isinstance(entries, list):
        return {}
    # Entries of any other shape (from before the password change and user were kept) are
    # dropped: such a browser is a stranger until its next login.
    return {
        str(entry[0]): (str(entry[1]), float(entry[2]), int(entry[3]))
        for entry in entries
        if isinstance(entry, list)
        and len(entry) == 4
        and isinstance(entry[0], str)
        and len(entry[0]) == KEY_LENGTH  # a digest: entries keyed by the name are dropped
        and isinstance(entry[2], int | float)
        and isinstance(entry[3], int)
    }


def device_of(username: str, user: Row | None) -> str | None:
    """Return this browser's device id for the user found by this name, if it is known to them.

    Known: it logged in as that very account (a twin name left without a key by a migration
    shares the name's key, not the account) since the account's last password change.
    """
    entry = remembered().get(name_key(username))
    if entry is None or user is None:
        return None
    device, changed_at, user_id = entry
    if user_id != user["id"] or changed_at != user["password_changed_at"]:
        return None
    return device


def remember(response: Response, username: str, user_id: int, password_changed_at: float) -> None:
    """Mark this browser as known to the user, on the response of a proof of the password."""
    entries = remembered()
    old = entries.pop(name_key(username), None)
    device = old[0] if old else secrets.token_urlsafe(16)
    # The newest last: the oldest is dropped first.
    entries[name_key(username)] = (device, password_changed_at, user_id)
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
