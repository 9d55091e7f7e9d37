"""The seam's types: what every backend provides and every caller may use, nothing more."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from contextlib import asynccontextmanager
from typing import Any
from typing import Protocol

logger = logging.getLogger("flaskr_async")

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

    async def open(self, migrate: bool = True) -> None:
        """Open the connections; ``migrate``: bring the schema up to date (a backup does not)."""
        ...

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
