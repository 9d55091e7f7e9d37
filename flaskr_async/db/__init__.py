"""The database seam: the one narrow interface views use, whatever the backend."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from contextlib import AsyncExitStack
from contextlib import asynccontextmanager
from typing import Any
from typing import Protocol

from quart import Quart
from quart import current_app
from quart import g

logger = logging.getLogger("flaskr_async")

DB_KEY = "flaskr_async.db"

Params = Sequence[Any]


class Row(Protocol):
    """A result row whose columns are read by name (or position)."""

    def __getitem__(self, key: str | int) -> Any: ...


class DatabaseUnavailable(RuntimeError):
    """The configured DATABASE cannot be opened or used."""


class IntegrityError(Exception):
    """A write broke a constraint (a duplicate username, say), whichever backend ran it."""


class Connection(Protocol):
    """One leased connection: statements, rows and a write transaction."""

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...

    def transaction(self) -> AbstractAsyncContextManager[None]: ...


class Database(Protocol):
    """A pool of connections to one database, opened and closed with the app."""

    pool_size: int  # connections opened at start-up, each leased to one request at a time

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def lease(self) -> AbstractAsyncContextManager[Connection]: ...

    async def reset_schema(self) -> None: ...

    async def backup(self, target: str) -> None: ...

    def __str__(self) -> str: ...  # names the database in log lines, without secrets


def create_database(config: Mapping[str, Any], pool_size: int | None = None) -> Database:
    """Build the backend that the DATABASE setting names; nothing is opened yet."""
    # Imported here: each backend imports this module for the seam's types.
    if str(config["DATABASE"]).startswith(("postgresql://", "postgres://")):
        from flaskr_async.db.postgres import PostgresDatabase

        return PostgresDatabase.from_config(config, pool_size)
    from flaskr_async.db.sqlite import SQLiteDatabase

    return SQLiteDatabase.from_config(config, pool_size)


def current_database() -> Database:
    """Return the serving app's open database."""
    return current_app.extensions[DB_KEY]  # type: ignore[no-any-return]


async def get_db() -> Connection:
    """Return this request's connection, leased from the app's pool on first use."""
    if "db" not in g:
        stack = AsyncExitStack()
        g.db = await stack.enter_async_context(current_database().lease())
        g.db_release = stack
    return g.db  # type: ignore[no-any-return]


async def release_db(_exc: BaseException | None = None) -> None:
    """Give this request's connection back to the pool; an open transaction is rolled back."""
    g.pop("db", None)
    stack: AsyncExitStack | None = g.pop("db_release", None)
    if stack is not None:
        await stack.aclose()


@asynccontextmanager
async def opened(
    config: Mapping[str, Any], pool_size: int | None = None
) -> AsyncIterator[Database]:
    """Open the configured database for a block, closing it however the block ends."""
    database = create_database(config, pool_size)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


async def serve_database() -> AsyncGenerator[None, None]:
    """Keep the app's database open while it serves (a Quart while_serving hook)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    async with opened(app.config) as database:
        app.extensions[DB_KEY] = database
        logger.info("Database opened: %s", database)
        try:
            yield
        finally:
            del app.extensions[DB_KEY]
    logger.info("Database closed: %s", database)


def init_app(app: Quart) -> None:
    """Open the database while the app serves and lease it per request."""
    app.while_serving(serve_database)
    app.teardown_appcontext(release_db)
