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
from dataclasses import dataclass

from quart import current_app
from quart import request
from quart import session

from flaskr_async.db import Row
from flaskr_async.db import Statements
from flaskr_async.db import get_db

SESSION_ID = "session_id"
# The most sessions one user keeps: a login beyond it ends the least recently used, so no
# script logging in again and again can fill the table (or the /auth/sessions page).
MAX_PER_USER = 50
USER_AGENT_MAX = 200  # characters of the User-Agent kept: enough to recognise a browser

USER_OF_SESSION = (
    "SELECT u.id, u.username, s.last_seen_at, s.login_id"
    ' FROM user_session s JOIN "user" u ON u.id = s.user_id'
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


async def create(tx: Statements, user_id: int, login_id: str | None = None) -> str:
    """Replace this browser's session row by a new one for the user; return the new id.

    ``login_id``: the login a rotated session descends from; a new login's is its own.
    """
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
        "INSERT INTO user_session"
        " (id_hash, user_id, created_at, last_seen_at, user_agent, login_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (id_hash(session_id), user_id, now, now, user_agent(), login_id or id_hash(session_id)),
    )
    await tx.execute(
        "DELETE FROM user_session WHERE user_id = ? AND id_hash NOT IN (SELECT id_hash"
        " FROM user_session WHERE user_id = ? ORDER BY last_seen_at DESC, created_at DESC"
        " LIMIT ?)",
        (user_id, user_id, MAX_PER_USER),
    )
    return session_id


def user_agent() -> str:
    """Return this request's User-Agent, shortened, with only printable characters.

    It is what the browser sends with every request, not a secret: kept so its user can tell
    their sessions apart, shown only to them, escaped like all page text.
    """
    sent = request.headers.get("User-Agent", "")[: USER_AGENT_MAX * 4]
    # Header bytes arrive as Latin-1 text; a browser that sends more than ASCII sends UTF-8.
    text = sent.encode("latin-1", "replace").decode("utf-8", "replace")
    return "".join(char for char in text if char.isprintable())[:USER_AGENT_MAX]


# Taken first by every change to a user's sessions or password: on PostgreSQL they then run one
# after another per user, so none can revive a session another ended (SQLite's writes already do).
LOCK_USER = 'UPDATE "user" SET password_changed_at = password_changed_at WHERE id = ?'


async def end_all(tx: Statements, user_id: int) -> None:
    """End every session of the user (a password change; the caller holds the user's row)."""
    await tx.execute("DELETE FROM user_session WHERE user_id = ?", (user_id,))


async def end_others(user_id: int, login_id: str) -> str | None:
    """End every session of the user, this one included; return this browser's new id.

    None, ending nothing, when this session had already ended (another session of the user
    ended it a moment ago): an ended session cannot end the others.
    """
    session_id = session.get(SESSION_ID)
    assert isinstance(session_id, str)  # only a logged-in user ends sessions
    async with get_db().transaction() as tx:
        await tx.execute(LOCK_USER, (user_id,))
        own = await tx.execute("DELETE FROM user_session WHERE id_hash = ?", (id_hash(session_id),))
        if not own:
            return None
        await end_all(tx, user_id)
        return await create(tx, user_id, login_id)


def forget() -> None:
    """Forget the cookie's contents: this browser is anonymous from now on."""
    session.clear()


@dataclass(frozen=True)
class ActiveSession:
    """One of a user's sessions as /auth/sessions shows it (times: Unix seconds)."""

    began: float
    last_used: float  # to within refresh_interval(): the row is written at most that often
    user_agent: str
    is_this_browser: bool


async def active_sessions(user_id: int) -> list[ActiveSession]:
    """Return the user's sessions that have not ended, the most recently used first."""
    now = time.time()
    rows = await get_db().fetch_all(
        "SELECT id_hash, created_at, last_seen_at, user_agent FROM user_session"
        " WHERE user_id = ? AND last_seen_at > ? AND created_at > ?"
        " ORDER BY last_seen_at DESC, created_at DESC LIMIT ?",
        (user_id, now - idle_timeout(), now - lifetime(), MAX_PER_USER),
    )
    session_id = session.get(SESSION_ID)
    own = id_hash(session_id) if isinstance(session_id, str) else None
    return [
        ActiveSession(
            began=row["created_at"],
            last_used=row["last_seen_at"],
            user_agent=row["user_agent"],
            is_this_browser=row["id_hash"] == own,
        )
        for row in rows
    ]


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
