"""Login throttling that can't be raced: each attempt is counted before its password is checked.

An attempt is reserved (a ``login_attempt`` row) in the same serialized transaction that checks
the rules, so however many arrive at once, at most a rule's allowance is verified in a window.
A password that matches deletes its own reservation: only failures stay counted.

The rules (README, "Login throttling"), within ``LOGIN_FAILURE_WINDOW`` seconds:
- a browser that has logged in as the user before (a device cookie): its own failures,
  ``LOGIN_MAX_FAILURES_PER_DEVICE``; failures made elsewhere never lock it out;
- any other browser: ``LOGIN_MAX_FAILURES_PER_USERNAME`` for the username from its address,
  ``LOGIN_MAX_FAILURES_PER_ADDRESS`` from its address, and ``LOGIN_MAX_FAILURES_PER_ACCOUNT``
  for the username from all such browsers together (a distributed guesser's ceiling).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from quart import current_app

from flaskr_async.db import Statements

# Every reservation, on every worker and host, takes its turn in this queue.
SERIALIZE_KEY = "flaskr_async.login_attempt"

# The most-th newest attempt in the window: logins stay refused until it leaves the window.
NTH_ATTEMPT = " AND attempted_at > ? ORDER BY attempted_at DESC LIMIT 1 OFFSET ?"
NTH_BY_DEVICE = "SELECT attempted_at FROM login_attempt WHERE device = ?" + NTH_ATTEMPT
NTH_BY_USERNAME_AND_ADDRESS = (
    "SELECT attempted_at FROM login_attempt WHERE username = ? AND address = ?" + NTH_ATTEMPT
)
NTH_BY_ADDRESS = "SELECT attempted_at FROM login_attempt WHERE address = ?" + NTH_ATTEMPT
NTH_BY_USERNAME = "SELECT attempted_at FROM login_attempt WHERE username = ?" + NTH_ATTEMPT


@dataclass(frozen=True)
class Reservation:
    """The outcome of asking to check a password: an attempt id, or how long to wait."""

    attempt_id: int | None
    retry_after: int  # seconds; 0 when the attempt may go ahead


Rule = tuple[str, tuple[str, ...], int]  # the query, its key, the most attempts it allows


def rules(username: str, address: str, device: str | None) -> list[Rule]:
    """Return the (query, key, most attempts) rules that apply to this attempt."""
    config = current_app.config
    if device is not None:
        return [(NTH_BY_DEVICE, (device,), int(config["LOGIN_MAX_FAILURES_PER_DEVICE"]))]
    return [
        (
            NTH_BY_USERNAME_AND_ADDRESS,
            (username, address),
            int(config["LOGIN_MAX_FAILURES_PER_USERNAME"]),
        ),
        (NTH_BY_ADDRESS, (address,), int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"])),
        (NTH_BY_USERNAME, (username,), int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"])),
    ]


async def reserve(tx: Statements, username: str, address: str, device: str | None) -> Reservation:
    """Count one attempt if the rules allow it; call inside ``transaction(SERIALIZE_KEY)``."""
    window = float(current_app.config["LOGIN_FAILURE_WINDOW"])
    now = time.time()
    # Attempts that have left the window count for nothing: forget them here, no job needed.
    await tx.execute("DELETE FROM login_attempt WHERE attempted_at <= ?", (now - window,))
    wait = 0.0
    for sql, key, most in rules(username, address, device):
        row = await tx.fetch_one(sql, (*key, now - window, most - 1))
        if row is not None:
            wait = max(wait, row["attempted_at"] + window - now)
    if wait > 0:
        return Reservation(None, max(1, math.ceil(wait)))
    row = await tx.fetch_one(
        "INSERT INTO login_attempt (username, address, device, attempted_at)"
        " VALUES (?, ?, ?, ?) RETURNING id",
        (username, address, device, now),
    )
    assert row is not None  # RETURNING always gives the new row
    return Reservation(int(row["id"]), 0)


async def forget(tx: Statements, attempt_id: int) -> None:
    """Delete a reservation whose password matched: successful logins never count."""
    await tx.execute("DELETE FROM login_attempt WHERE id = ?", (attempt_id,))
