"""The database seam: the one narrow interface views use, whatever the backend."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from contextlib import asynccontextmanager
from typing import Any
from typing import Protocol

from quart import Quart
from quart import current_app

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


class Statements(Protocol):
    """Run statements and read rows, the SQL wording of every backend."""

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...


class Connection(Statements, Protocol):
    """One leased connection: statements, and a write transaction on it."""

    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    async def serialize(self, key: str) -> None: ...


class Database(Statements, Protocol):
    """What views use: each statement leases a pooled connection for itself alone.

    ``fetch_one``/``fetch_all``/``execute`` lease a connection for that one statement
    (autocommit); ``async with db.transaction() as tx:`` leases one for the block and commits
    at its end (rolls back on any exception, cancellation included). Nothing is held between
    units of work, so a request that waits on its client or on a password hash holds no
    connection.
    """

    pool_size: int  # connections opened at start-up, each leased to one unit of work at a time

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self, serialize: str | None = None) -> AbstractAsyncContextManager[Statements]:
        """Lease a connection for one transaction; ``serialize`` names a queue it waits in."""
        ...

    async def reset_schema(self) -> None: ...

    async def backup(self, target: str) -> None: ...

    def __str__(self) -> str: ...  # names the database in log lines, without secrets


class Pool(Database, Protocol):
    """A backend's pool: the connection lease beneath the per-statement methods."""

    def lease(self) -> AbstractAsyncContextManager[Connection]: ...


class PooledDatabase:
    """The per-unit-of-work methods of ``Database``, built on a backend's ``lease``."""

    def lease(self) -> AbstractAsyncContextManager[Connection]:
        """Lend one connection exclusively to the block (each backend defines it)."""
        raise NotImplementedError  # pragma: no cover - every backend overrides it

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query on a connection leased for it alone; return its first row, if any."""
        async with self.lease() as connection:
            return await connection.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query on a connection leased for it alone; return all its rows."""
        async with self.lease() as connection:
            return await connection.fetch_all(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; return how many rows it changed."""
        async with self.lease() as connection:
            return await connection.execute(sql, params)

    @asynccontextmanager
    async def transaction(self, serialize: str | None = None) -> AsyncIterator[Statements]:
        """Lease a connection for the block and run the block in one transaction on it.

        Transactions that name the same ``serialize`` key run one after another, on every
        worker and host: a read-check-write block (counting login attempts) cannot be raced.
        """
        async with self.lease() as connection, connection.transaction():
            if serialize is not None:
                await connection.serialize(serialize)
            yield connection


def create_database(config: Mapping[str, Any], pool_size: int | None = None) -> Pool:
    """Build the backend that the DATABASE setting names; nothing is opened yet."""
    # Imported here: each backend imports this module for the seam's types.
    if str(config["DATABASE"]).startswith(("postgresql://", "postgres://")):
        from flaskr_async.db.postgres import PostgresDatabase

        return PostgresDatabase.from_config(config, pool_size)
    from flaskr_async.db.sqlite import SQLiteDatabase

    return SQLiteDatabase.from_config(config, pool_size)


def current_database() -> Pool:
    """Return the serving app's open database."""
    return current_app.extensions[DB_KEY]  # type: ignore[no-any-return]


def get_db() -> Database:
    """Return the serving app's database; each statement or transaction leases for itself."""
    return current_database()


@asynccontextmanager
async def opened(config: Mapping[str, Any], pool_size: int | None = None) -> AsyncIterator[Pool]:
    """Open the configured database for a block, closing it however the block ends."""
    database = create_database(config, pool_size)
    await database.open()
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
