"""The app with SQLite reads run on the event loop's thread: what aiosqlite's hand-off costs.

Never shipped, only measured. aiosqlite runs each query in the connection's own thread, and
that thread takes the GIL back from the busy event loop for every row it reads; here the
seam's ``fetch_all`` reads through a plain sqlite3 connection on the loop's thread instead
(one per pooled connection, same file and settings), so the benchmark can put a figure on it.
"""

from __future__ import annotations

import sqlite3

from asgi import app
from flaskr_async.db import Params
from flaskr_async.db import Row
from flaskr_async.db.sqlite import SQLiteConnection

on_the_loop: dict[int, sqlite3.Connection] = {}


async def fetch_all_on_the_loop(self: SQLiteConnection, sql: str, params: Params = ()) -> list[Row]:
    """Run a query on the loop's own connection twin, blocking the loop while it runs."""
    if id(self) not in on_the_loop:
        path = app.config["DATABASE"]
        twin = sqlite3.connect(path, isolation_level=None, detect_types=sqlite3.PARSE_DECLTYPES)
        twin.row_factory = sqlite3.Row
        on_the_loop[id(self)] = twin
    return list(on_the_loop[id(self)].execute(sql, params).fetchall())


@app.after_serving
async def close_the_twins() -> None:
    """Close the loop's connections with the app's own."""
    while on_the_loop:
        on_the_loop.popitem()[1].close()


SQLiteConnection.fetch_all = fetch_all_on_the_loop  # type: ignore[method-assign]

__all__ = ["app"]
