"""Count what one request costs the event loop: thread round trips, rows, leases, awaits.

Used by ``profile_index.py`` (run it with ``--tree`` on an older checkout for the "before").
Counted in-process, one request at a time, through the ASGI app:

- thread round trips: calls queued to an aiosqlite connection's thread (each is one hand-over
  to the thread and one back to the loop, the loop woken through its self-pipe);
- rows handed over: rows those calls returned, each read by the thread with the GIL taken
  back from the loop (``sqlite3`` releases it around every step);
- leases: connections taken from the pool (a unit of work each);
- coroutine calls and loop turns: every coroutine started, against the times the loop went
  round (a coroutine that returns without the loop going round did no I/O).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import aiosqlite

SESSION_ID = "benchmark-session-id"


@dataclass
class Costs:
    """Per-request averages."""

    round_trips: float
    rows: float
    leases: float
    coroutine_calls: float
    loop_turns: float

    def line(self) -> str:
        """Return the costs as one line."""
        return (
            f"{self.round_trips:5.1f} thread round trips, {self.rows:5.1f} rows handed over one by"
            f" one, {self.leases:4.1f} leases, {self.coroutine_calls:5.1f} coroutine calls for"
            f" {self.loop_turns:4.1f} loop turns"
        )


class Counters:
    """Counts filled by the patches below."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.rows = 0
        self.leases = 0
        self.coroutine_calls = 0
        self.loop_turns = 0


@contextmanager
def counting(app: Any, loop: asyncio.AbstractEventLoop) -> Iterator[Counters]:
    """Count round trips, rows, leases, coroutine calls and loop turns while the block runs."""
    counters = Counters()
    execute: Callable[..., Any] = aiosqlite.Connection._execute

    async def counted_execute(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        counters.round_trips += 1
        result = await execute(self, fn, *args, **kw)
        if isinstance(result, list):
            counters.rows += len(result)
        return result

    database = app.extensions.get("flaskr_async.db")  # none in a plain Quart app
    lease = database.lease if database is not None else None

    def counted_lease() -> Any:
        counters.leases += 1
        return lease()  # type: ignore[misc]

    run_once = loop._run_once  # type: ignore[attr-defined]

    def counted_run_once() -> None:
        counters.loop_turns += 1
        run_once()

    # A coroutine's frame reports "call" when it starts and again each time it resumes: count
    # each frame once, keeping it alive meanwhile so that no later frame reuses its id.
    started: dict[int, FrameType] = {}

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_flags & inspect.CO_COROUTINE:
            if id(frame) not in started:
                started[id(frame)] = frame
                counters.coroutine_calls += 1

    aiosqlite.Connection._execute = counted_execute  # type: ignore[method-assign]
    if database is not None:
        database.lease = counted_lease
    loop._run_once = counted_run_once  # type: ignore[attr-defined]
    sys.setprofile(profile)
    try:
        yield counters
    finally:
        sys.setprofile(None)
        started.clear()
        loop._run_once = run_once  # type: ignore[attr-defined]
        if database is not None:
            database.lease = lease
        aiosqlite.Connection._execute = execute  # type: ignore[method-assign]


async def log_in(app: Any) -> dict[str, str]:
    """Make a server-side session for the benchmark user; return its cookie header."""
    database = app.extensions["flaskr_async.db"]
    id_hash = hashlib.sha256(SESSION_ID.encode()).hexdigest()
    now = time.time()
    user = await database.fetch_one('SELECT id FROM "user" ORDER BY id LIMIT 1')
    await database.execute(
        "INSERT INTO user_session (id_hash, user_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)",
        (id_hash, user["id"], now, now),
    )
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = serializer.dumps({"_permanent": True, "session_id": SESSION_ID})
    return {"cookie": f"session={cookie}"}


async def lease_cost(app: Any, count: int = 20_000) -> float:
    """Return the seconds one lease and release of a pooled connection takes, uncontended."""
    database = app.extensions["flaskr_async.db"]
    began = time.perf_counter()
    for _ in range(count):
        async with database.lease():
            pass
    return (time.perf_counter() - began) / count


async def measure(
    app: Any,
    request: Callable[..., Any],
    paths: dict[str, tuple[str, bool]],
    count: int = 200,
) -> tuple[dict[str, Costs], float]:
    """Return the costs of each named (path, logged in) request, and one lease's seconds."""
    results: dict[str, Costs] = {}
    async with app.test_app():
        plain = "flaskr_async.db" not in app.extensions
        headers = {} if plain else await log_in(app)
        loop = asyncio.get_running_loop()
        for name, (path, logged_in) in paths.items():
            extra = headers if logged_in else {}
            for _ in range(20):
                assert await request(app, path, extra) == 200
            with counting(app, loop) as counters:
                for _ in range(count):
                    await request(app, path, extra)
            results[name] = Costs(
                counters.round_trips / count,
                counters.rows / count,
                counters.leases / count,
                counters.coroutine_calls / count,
                counters.loop_turns / count,
            )
        cost = 0.0 if plain else await lease_cost(app)
    return results, cost
