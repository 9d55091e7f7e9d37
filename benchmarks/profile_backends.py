"""Where an index request's time goes on SQLite and on PostgreSQL, measured in-process.

``.venv/bin/python -m benchmarks.profile_backends --sqlite PATH --postgresql URL [--tree DIR]``
(both databases seeded by ``seed.py``; the harness's ``postgres`` phase runs it). One request or
query at a time, no HTTP server: the seam's round trip for a trivial query, the index query
and create's INSERT; the whole index request through the ASGI app; and cProfile's own time
of the index request grouped by area. Each backend's database work runs elsewhere (SQLite
in aiosqlite's thread, PostgreSQL in its server), so on the loop's thread it shows up as
time waiting in epoll.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import seed
from benchmarks.harness import ROOT
from benchmarks.profile_index import drive_quart
from benchmarks.profile_index import import_from

SECRET_KEY = "profile-secret-key-that-is-long-enough-to-serve"

# Where a function's own time lands: the first fragment found in "file:function" wins.
AREAS = (
    ("asyncpg", "asyncpg (protocol, pool)"),
    ("aiosqlite", "aiosqlite (thread hand-off)"),
    ("epoll", "waiting in epoll (DB thread or socket)"),
    ("/jinja2/", "Jinja rendering"),
    ("/markupsafe/", "Jinja rendering"),
    ("flaskr_async/templates", "Jinja rendering"),
    ("flaskr_async/db", "app database seam"),
    ("/quart_wtf/", "quart-wtf, wtforms"),
    ("/wtforms/", "quart-wtf, wtforms"),
    ("/quart/", "Quart"),
    ("/werkzeug/", "werkzeug, flask, itsdangerous"),
    ("/flask/", "werkzeug, flask, itsdangerous"),
    ("/itsdangerous/", "werkzeug, flask, itsdangerous"),
    ("flaskr_async", "app code"),
    ("/asyncio/", "asyncio event loop"),
    ("selectors", "asyncio event loop"),
)
OTHER = "other (built-ins, stdlib)"


def area(filename: str, function: str) -> str:
    """Name the area a profiled function belongs to."""
    where = f"{filename}:{function}"
    return next((label for part, label in AREAS if part in where), OTHER)


async def per_call(count: int, call: Callable[[], Awaitable[Any]]) -> float:
    """Await ``call`` ``count`` times one after another (after a warm-up); return us per call."""
    for _ in range(min(100, count)):
        await call()
    began = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - began) / count * 1e6


async def seam_costs(config: Any, count: int) -> dict[str, float]:
    """Time the seam: a lease and its release, then statements on one leased connection."""
    from flaskr_async.blog import OLDER_POSTS
    from flaskr_async.converters import MAX_ID
    from flaskr_async.db import opened

    async with opened(config, pool_size=1) as database:

        async def lease() -> None:
            async with database.lease():
                pass

        costs = {"lease and release a connection": await per_call(count, lease)}
        async with database.lease() as db:

            async def insert() -> None:
                async with db.transaction():
                    await db.execute(
                        "INSERT INTO post (title, body, author_id) VALUES (?, ?, ?)",
                        (seed.TITLE.format(99), seed.BODY.format(99), 1),
                    )

            costs["SELECT 1"] = await per_call(count, lambda: db.fetch_one("SELECT 1"))
            costs["index query (51 rows)"] = await per_call(
                count, lambda: db.fetch_all(OLDER_POSTS, (MAX_ID, 51))
            )
            costs["INSERT in a transaction"] = await per_call(count, insert)
    return costs


async def lease_with_default_reset(url: str, count: int) -> float:
    """Time a lease on an asyncpg pool with its default reset query, which the app skips."""
    import asyncpg

    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:

        async def lease() -> None:
            async with pool.acquire():
                pass

        return await per_call(count, lease)


@dataclass
class Costs:
    """One backend's measurements, in microseconds."""

    seam: dict[str, float]
    request: float
    profiled: float
    areas: dict[str, float]


def profile(database: str, queries: int, requests: int) -> Costs:
    """Measure one backend: the index request plain and under cProfile, then the seam."""
    os.environ.update(
        FLASKR_DATABASE=database,
        FLASKR_POSTS_PER_PAGE="50",
        FLASKR_SECRET_KEY=SECRET_KEY,
    )
    from flaskr_async import create_app

    request = asyncio.run(drive_quart(create_app(), requests, None)) * 1e6
    profiler = cProfile.Profile()
    profiled = asyncio.run(drive_quart(create_app(), requests, profiler)) * 1e6
    areas: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in stats.items():
        label = area(filename, function)
        areas[label] = areas.get(label, 0.0) + own / requests * 1e6
    # The inserts come last: they add posts, which the index requests must not see.
    seam = asyncio.run(seam_costs(create_app().config, queries))
    return Costs(seam, request, profiled, areas)


def main() -> None:
    """Measure both backends and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sqlite", required=True, help="a seeded SQLite file")
    parser.add_argument("--postgresql", required=True, help="a seeded PostgreSQL URL")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tree", type=Path, default=ROOT, help="project tree to profile")
    args = parser.parse_args()
    import_from(args.tree.resolve())
    sqlite = profile(args.sqlite, args.queries, args.requests)
    postgres = profile(args.postgresql, args.queries, args.requests)
    default_reset = asyncio.run(lease_with_default_reset(args.postgresql, args.queries))
    print(f"{'in-process, one at a time, us':<50} {'sqlite':>8} {'postgresql':>11}")
    for label, us in sqlite.seam.items():
        print(f"{'seam: ' + label:<50} {us:8.0f} {postgres.seam[label]:11.0f}")
    default_label = "  (the same with asyncpg's default reset=)"
    print(f"{default_label:<50} {'':8} {default_reset:11.0f}")
    rows = [("index request, whole app (no server)", sqlite.request, postgres.request)]
    rows.append(("  under cProfile; own time by area:", sqlite.profiled, postgres.profiled))
    for label, on_sqlite, on_postgres in rows:
        print(f"{label:<50} {on_sqlite:8.0f} {on_postgres:11.0f}")
    labels = sorted(
        sqlite.areas.keys() | postgres.areas.keys(),
        key=lambda label: -(sqlite.areas.get(label, 0.0) + postgres.areas.get(label, 0.0)),
    )
    for label in labels:
        print(
            f"{'    ' + label:<50} {sqlite.areas.get(label, 0.0):8.0f}"
            f" {postgres.areas.get(label, 0.0):11.0f}"
        )


if __name__ == "__main__":
    main()
