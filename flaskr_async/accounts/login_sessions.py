"""Login sessions kept on the server, so that logout and expiry end them (OWASP ASVS V3.3).

The signed session cookie carries a random session id; a ``user_session`` row, looked up in the
same query that loads the user, makes it valid. Logout deletes the row, a login replaces it, and
a session ends on the server after ``SESSION_IDLE_TIMEOUT`` seconds unused or
``PERMANENT_SESSION_LIFETIME`` after login, whatever the cookie says.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from quart import current_app
from quart import session

from flaskr_async.db import Row
from flaskr_async.db import Statements
from flaskr_async.db import get_db

SESSION_ID = "session_id"

USER_OF_SESSION = (
    'SELECT u.id, u.username, s.last_seen_at FROM user_session s JOIN "user" u ON u.id = s.user_id'
    " WHERE s.id_hash = ? AND s.last_seen_at > ? AND s.created_at > ?"
)


def id_hash(session_id: str) -> str:
    """Return the stored form of a session id (SHA-256, hex): the table alone logs nobody in."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def idle_timeout() -> float:
    """Seconds a session may go unused before it ends."""
    return float(current_app.config["SESSION_IDLE_TIMEOUT"])


def lifetime() -> float:
    """Seconds a session lasts after login, however busy."""
    return float(current_app.permanent_session_lifetime.total_seconds())


def refresh_interval() -> float:
    """Seconds between two writes of a session's last use: at most one write a minute."""
    return min(60.0, idle_timeout() / 10)


async def load_user() -> Row | None:
    """Return the user of this request's session, or None; a session that has ended is cleared."""
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str):
        return None
    now = time.time()
    db = get_db()
    row = await db.fetch_one(
        USER_OF_SESSION, (id_hash(session_id), now - idle_timeout(), now - lifetime())
    )
    if row is None:
        # Logged out elsewhere, expired, or forged: an anonymous visitor from now on.
        session.clear()
        return None
    if now - row["last_seen_at"] > refresh_interval():
        await db.execute(
            "UPDATE user_session SET last_seen_at = ? WHERE id_hash = ?", (now, id_hash(session_id))
        )
    return row


async def create(tx: Statements, user_id: int) -> str:
    """Replace this browser's session row by a new one for the user; return the new id."""
    now = time.time()
    # Ended sessions are deleted here, at each login, so no separate clean-up job is needed.
    await tx.execute(
        "DELETE FROM user_session WHERE last_seen_at <= ? OR created_at <= ?",
        (now - idle_timeout(), now - lifetime()),
    )
    old_id = session.get(SESSION_ID)
    if isinstance(old_id, str):
        await tx.execute("DELETE FROM user_session WHERE id_hash = ?", (id_hash(old_id),))
    session_id = secrets.token_urlsafe(32)
    await tx.execute(
        "INSERT INTO user_session (id_hash, user_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)",
        (id_hash(session_id), user_id, now, now),
    )
    return session_id


def remember(session_id: str) -> None:
    """Put a committed session's id in a fresh cookie."""
    # A fresh cookie: nothing from before (a planted value, an old CSRF token) survives.
    session.clear()
    session.permanent = True
    session[SESSION_ID] = session_id


async def end() -> None:
    """End this browser's session on the server and forget the cookie's contents."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        await get_db().execute("DELETE FROM user_session WHERE id_hash = ?", (id_hash(session_id),))
    session.clear()
