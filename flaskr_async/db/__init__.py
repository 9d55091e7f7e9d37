"""The database: Flaskr's db.py, grown into a seam with two backends behind it.

Views call ``get_db()`` and use the ``Database`` interface (``interface.py``): a statement or a
transaction leases a pooled connection for itself alone, so nothing is held while a request
waits on its client. The app's lifecycle, in order:

1. ``create_app`` calls ``init_app``: nothing is opened (no I/O in the factory).
2. Serving starts: ``serve_database`` builds the backend that DATABASE names (``sqlite.py``:
   aiosqlite, the embedded default; ``postgres.py``: asyncpg, for several hosts), opens its
   pool and brings the schema up to date (``migrations/``: numbered versions, each applied
   once; ``schema.py`` holds what both backends share).
3. Serving stops: the pool is closed, after the live index's streams have ended.

``commands.py`` holds Flaskr's ``init-db``, and ``backup``, which open the database for one
command. Nothing here imports a view, a layer above, or one backend from the other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import Any

from quart import Quart
from quart import current_app

from flaskr_async.db.interface import Connection
from flaskr_async.db.interface import Database
from flaskr_async.db.interface import DatabaseUnavailable
from flaskr_async.db.interface import IntegrityError
from flaskr_async.db.interface import Params
from flaskr_async.db.interface import Pool
from flaskr_async.db.interface import PooledDatabase
from flaskr_async.db.interface import Row
from flaskr_async.db.interface import Statements
from flaskr_async.db.interface import logger

__all__ = [
    "Connection",
    "Database",
    "DatabaseUnavailable",
    "IntegrityError",
    "Params",
    "Pool",
    "PooledDatabase",
    "Row",
    "Statements",
    "create_database",
    "current_database",
    "get_db",
    "init_app",
    "logger",
    "opened",
]

DB_KEY = "flaskr_async.db"


def create_database(config: Mapping[str, Any], pool_size: int | None = None) -> Pool:
    """Build the backend that the DATABASE setting names; nothing is opened yet."""
    # Imported when chosen: an app on SQLite never loads asyncpg.
    if str(config["DATABASE"]).startswith(("postgresql://", "postgres://")):
        from flaskr_async.db.postgres import PostgresDatabase

        return PostgresDatabase.from_config(config, pool_size)
    from flaskr_async.db.sqlite import SQLiteDatabase

    return SQLiteDatabase.from_config(config, pool_size)


# Flaskr's `with app.app_context(): get_db()` met a bare KeyError here: say where it opens.
NOT_SERVING = (
    "The database is not open: it opens while the app serves (its before_serving hooks), not in"
    " an app context. In a test or a script, enter `async with app.test_app():` first"
    " (docs/porting.md, 7)."
)


def current_database() -> Pool:
    """Return the serving app's open database."""
    try:
        return current_app.extensions[DB_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(NOT_SERVING) from None


def get_db() -> Database:
    """Return the serving app's database; each statement or transaction leases for itself."""
    return current_database()


@asynccontextmanager
async def opened(
    config: Mapping[str, Any], pool_size: int | None = None, migrate: bool = True
) -> AsyncIterator[Pool]:
    """Open the configured database for a block (``migrate``: its schema brought up to date)."""
    database = create_database(config, pool_size)
    await database.open(migrate)
    try:
        yield database
    finally:
        await database.close()


async def serve_database() -> AsyncGenerator[None, None]:
    """Keep the app's database open while it serves (a Quart while_serving hook)."""
    # The app itself: a reload closes this generator outside any app context. Quart 0.23 types
    # the proxy's _get_current_object, 0.22 does not: hence the unused-ignore.
    app = current_app._get_current_object()  # type: ignore[attr-defined, unused-ignore]
    # No `async with opened(...)` here: on a reload, Quart's development server closes every
    # live async generator at once (loop.shutdown_asyncgens), the context manager's own one
    # too, and this one's exit then finds that one already running. So close it by hand.
    database = create_database(app.config)
    await database.open()
    app.extensions[DB_KEY] = database
    logger.info("Database opened: %s", database)
    try:
        yield
    finally:
        del app.extensions[DB_KEY]
        await database.close()
        logger.info("Database closed: %s", database)


def init_app(app: Quart) -> None:
    """Open the database while the app serves."""
    app.while_serving(serve_database)
