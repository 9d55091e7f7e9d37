"""Login throttling: failed logins counted in the database, so every worker and host agrees."""

from __future__ import annotations

import math
import time

from quart import current_app

from flaskr_async.db import Connection

# The limit-th newest failure in the window: logins stay refused until it leaves the window.
NTH_FAILURE_BY_USERNAME = (
    "SELECT failed_at FROM login_failure WHERE username = ? AND failed_at > ?"
    " ORDER BY failed_at DESC LIMIT 1 OFFSET ?"
)
NTH_FAILURE_BY_ADDRESS = (
    "SELECT failed_at FROM login_failure WHERE address = ? AND failed_at > ?"
    " ORDER BY failed_at DESC LIMIT 1 OFFSET ?"
)


async def seconds_locked(db: Connection, username: str, address: str) -> int:
    """Return how long logins for this username or from this address stay refused (0: allowed)."""
    config = current_app.config
    window = float(config["LOGIN_FAILURE_WINDOW"])
    now = time.time()
    wait = 0.0
    for sql, key, limit in (
        (NTH_FAILURE_BY_USERNAME, username, int(config["LOGIN_MAX_FAILURES_PER_USERNAME"])),
        (NTH_FAILURE_BY_ADDRESS, address, int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"])),
    ):
        row = await db.fetch_one(sql, (key, now - window, limit - 1))
        if row is not None:
            wait = max(wait, row["failed_at"] + window - now)
    return math.ceil(wait)


async def record_failure(db: Connection, username: str, address: str) -> None:
    """Count one failed login, forgetting failures that have left the window."""
    now = time.time()
    async with db.transaction():
        await db.execute(
            "DELETE FROM login_failure WHERE failed_at <= ?",
            (now - float(current_app.config["LOGIN_FAILURE_WINDOW"]),),
        )
        await db.execute(
            "INSERT INTO login_failure (username, address, failed_at) VALUES (?, ?, ?)",
            (username, address, now),
        )
