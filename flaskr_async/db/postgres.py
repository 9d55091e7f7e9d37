"""The PostgreSQL backend, for several hosts on one database: an asyncpg pool."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import shutil
from collections.abc import AsyncIterator
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from flaskr_async import private_files
from flaskr_async.db.interface import DatabaseUnavailable
from flaskr_async.db.interface import IntegrityError
from flaskr_async.db.interface import Params
from flaskr_async.db.interface import PooledDatabase
from flaskr_async.db.interface import Row
from flaskr_async.db.interface import logger
from flaskr_async.db.migrations import POSTGRES
from flaskr_async.db.migrations import reset
from flaskr_async.db.migrations import upgrade

# Connections cost the event loop nothing while they wait on the network, and a remote server
# adds round-trip time to every lease: a few more than SQLite's keep requests from queueing.
DEFAULT_POOL_SIZE = 4


@functools.lru_cache(maxsize=256)
def numbered_placeholders(sql: str) -> str:
    """Turn the views' ``?`` placeholders into PostgreSQL's ``$1, $2, ...``."""
    parts = sql.split("?")
    # The app's SQL has no "?" inside string literals, so every "?" is a placeholder.
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


def advisory_lock_id(key: str) -> int:
    """Map a lock name to PostgreSQL's signed 64-bit advisory lock id, the same on every host."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def redacted(url: str) -> str:
    """Return the URL without its password, for messages and logs."""
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}{at}{location}" if at else url


async def keep_session_state(_raw: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is: the app sets no session state to undo."""
    # asyncpg's default reset costs a round trip per lease (RESET ALL, UNLISTEN *, ...); it
    # still rolls back an open transaction before calling this (benchmarks/profile_backends.py).


class PostgresConnection:
    """One pooled asyncpg connection behind the seam's interface."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, if any."""
        row: Row | None = await self.raw.fetchrow(numbered_placeholders(sql), *params)
        return row

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return all its rows."""
        return list(await self.raw.fetch(numbered_placeholders(sql), *params))

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement and return how many rows it changed."""
        try:
            status: str = await self.raw.execute(numbered_placeholders(sql), *params)
        except asyncpg.IntegrityConstraintViolationError as error:
            raise IntegrityError(str(error)) from error
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the block in one transaction: commit on success, else roll back."""
        # asyncpg rolls back on any exception, cancellation included.
        async with self.raw.transaction():
            yield

    async def serialize(self, key: str) -> None:
        """Wait for, then hold until commit, the advisory lock that ``key`` names."""
        await self.raw.execute("SELECT pg_advisory_xact_lock($1)", advisory_lock_id(key))


class PostgresDatabase(PooledDatabase):
    """A pool of connections to one PostgreSQL database."""

    def __init__(self, url: str, *, pool_size: int) -> None:
        self.url = url
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], pool_size: int | None) -> PostgresDatabase:
        """Build the pool from the app's settings."""
        size = pool_size or int(config["DATABASE_POOL_SIZE"] or DEFAULT_POOL_SIZE)
        return cls(str(config["DATABASE"]), pool_size=size)

    def __str__(self) -> str:
        return redacted(self.url)

    async def open(self, migrate: bool = True) -> None:
        """Open the pool and (``migrate``) bring the schema up to date; on failure close all."""
        try:
            self.pool = await asyncpg.create_pool(
                self.url,
                min_size=self.pool_size,
                max_size=self.pool_size,
                # Timestamps render the same on every host, whatever its time zone.
                server_settings={"timezone": "UTC"},
                reset=keep_session_state,
            )
            if migrate:
                async with self.lease() as connection:
                    await upgrade(connection, POSTGRES)
        except DatabaseUnavailable as error:  # a schema too new, a failed step: its own line
            await self.close()
            logger.error("%s", error)
            raise
        except (TimeoutError, asyncpg.PostgresError, OSError) as error:
            await self.close()
            message = f"Cannot use DATABASE {str(self)!r}: {error}"
            logger.error(message)
            raise DatabaseUnavailable(message) from error
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every connection of the pool."""
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[PostgresConnection]:
        """Lend one connection exclusively to the block."""
        assert self.pool is not None, "the database is not open"
        # The pool rolls back anything left open when the connection comes back.
        async with self.pool.acquire() as raw:
            yield PostgresConnection(raw)

    async def reset_schema(self) -> None:
        """Drop every table and create the schema afresh, one host at a time."""
        async with self.lease() as connection:
            await reset(connection, POSTGRES)

    async def backup(self, target: str) -> None:
        """Write a consistent copy with pg_dump (custom format, for pg_restore).

        pg_dump writes to its standard output, the descriptor that created the target
        exclusively and owner-only (private_files.py): never to a file by name, which whoever
        can write to the folder could swap for one of theirs.
        """
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise DatabaseUnavailable("Backing up PostgreSQL needs pg_dump on the PATH.")
        try:
            with private_files.created(target) as descriptor:
                process = await asyncio.create_subprocess_exec(
                    pg_dump,
                    "--format=custom",
                    f"--dbname={self.url}",
                    stdout=descriptor,
                    stderr=asyncio.subprocess.PIPE,
                )
                _, errors = await process.communicate()
                if process.returncode != 0:
                    message = errors.decode(errors="replace").strip()
                    raise DatabaseUnavailable(f"pg_dump failed: {message}")
        except FileExistsError as error:
            raise DatabaseUnavailable(f"Backup target {target!r} already exists.") from error
        except private_files.UnsafeFile as error:
            raise DatabaseUnavailable(f"Cannot back up to {target!r}: {error}") from error
        except OSError as error:
            raise DatabaseUnavailable(f"Cannot back up to {target!r}: {error.strerror}") from error
