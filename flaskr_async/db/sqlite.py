"""The embedded SQLite backend: a pool of aiosqlite connections opened at start-up."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from collections.abc import Mapping
from contextlib import asynccontextmanager
from datetime import UTC
from datetime import datetime
from typing import Any

import aiosqlite

from flaskr_async import private_files
from flaskr_async.db.interface import DatabaseUnavailable
from flaskr_async.db.interface import IntegrityError
from flaskr_async.db.interface import Params
from flaskr_async.db.interface import PooledDatabase
from flaskr_async.db.interface import Row
from flaskr_async.db.interface import logger
from flaskr_async.db.migrations import SQLITE
from flaskr_async.db.migrations import reset
from flaskr_async.db.migrations import upgrade
from flaskr_async.settings import SYNCHRONOUS_MODES

# One pooled connection, so one thread for requests (the live index polls on one of its own):
# each thread takes the GIL back from the busy event loop for every row it reads, and each
# more thread adds to that tug of war. Under load one served the index faster than two, and
# two faster than four (`make bench`, "full-pool2"); the pool's requests also never wait on
# SQLite's write lock for each other. More connections help only a slow statement.
DEFAULT_POOL_SIZE = 1


def parse_timestamp(value: bytes) -> datetime:
    """Read SQLite's CURRENT_TIMESTAMP text as an aware UTC datetime."""
    return datetime.fromisoformat(value.decode()).replace(tzinfo=UTC)


# Columns declared TIMESTAMP come back as datetimes, like timestamptz from PostgreSQL.
sqlite3.register_converter("timestamp", parse_timestamp)


def database_path(url: str) -> str:
    """Return the file path of a plain path or a ``sqlite:///path`` URL."""
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url


# What SQLite keeps beside the database; it creates each with the database file's mode bits.
COMPANIONS = ("-wal", "-shm", "-journal")
# Seconds a starting process waits for another's schema migration (each step holds the write
# lock) before it gives up: a deploy's upgrade of a large database, not a request's wait.
MIGRATION_WAIT = 600
BUSY_RETRY_INTERVAL = 0.01  # seconds between two tries of a statement SQLite answered "busy"


def prepare_file(path: str) -> None:
    """Create a missing database file owner-only; refuse files others could read, own or swap."""
    try:
        # SQLite would create it 0644 under the usual umask 022; created here, it is 0600 from
        # its first byte, and the -wal and -shm files SQLite adds beside it take that mode.
        os.close(private_files.create(path))
    except FileExistsError:
        private_files.check_existing(path)
    except OSError:
        pass  # no folder, or an unwritable one: SQLite's own error says so, with the hint
    for suffix in COMPANIONS:
        private_files.check_existing(path + suffix)


class SQLiteConnection:
    """One aiosqlite connection, in autocommit mode outside explicit transactions."""

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw
        # Set once BEGIN is queued: the worker thread may still be running it when a
        # cancellation reaches us, so only a queued rollback knows the true state.
        self.may_be_in_transaction = False

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, if any (the query must return few rows)."""
        # One trip to the connection's thread instead of three (execute, fetchone, close):
        # every fetch_one query of the app is bounded (LIMIT 1, a unique key, an aggregate).
        rows = await self.raw.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return all its rows."""
        return list(await self.raw.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement and return how many rows it changed."""
        try:
            async with self.raw.execute(sql, params) as cursor:
                return cursor.rowcount
        except sqlite3.IntegrityError as error:
            raise IntegrityError(str(error)) from error

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the block in one write transaction: commit on success, else roll back."""
        self.may_be_in_transaction = True
        try:
            # IMMEDIATE takes the write lock up front, so two read-then-write
            # transactions never deadlock into "database is locked".
            await self.raw.execute("BEGIN IMMEDIATE")
            yield
            await self.raw.commit()
        except BaseException:
            await self.rollback()
            raise
        self.may_be_in_transaction = False

    async def serialize(self, key: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already runs one write transaction at a time."""

    async def rollback(self) -> None:
        """Roll back whatever transaction the worker thread may have open."""
        # sqlite3's rollback is a no-op outside a transaction, and it is queued
        # behind any statement still running, so it is always safe to call.
        await self.raw.rollback()
        self.may_be_in_transaction = False


class SQLiteDatabase(PooledDatabase):
    """A fixed pool of connections to one SQLite file."""

    def __init__(self, path: str, *, pool_size: int, busy_timeout: float, synchronous: str) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = path
        self.pool_size = pool_size
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        self.connections: list[SQLiteConnection] = []
        self.idle: asyncio.Queue[SQLiteConnection] = asyncio.Queue()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], pool_size: int | None) -> SQLiteDatabase:
        """Build the pool from the app's settings."""
        return cls(
            database_path(str(config["DATABASE"])),
            pool_size=pool_size or int(config["DATABASE_POOL_SIZE"] or DEFAULT_POOL_SIZE),
            busy_timeout=float(config["SQLITE_BUSY_TIMEOUT"]),
            synchronous=str(config["SQLITE_SYNCHRONOUS"]),
        )

    def __str__(self) -> str:
        return self.path

    async def open(self, migrate: bool = True) -> None:
        """Open every connection and (``migrate``) bring the schema up to date, or close all."""
        try:
            prepare_file(self.path)
            for _ in range(self.pool_size):
                connection = SQLiteConnection(await self.connect())
                self.connections.append(connection)
                self.idle.put_nowait(connection)
            if migrate:
                async with self.lease() as connection, self.waiting_for_migrations(connection):
                    await upgrade(connection, SQLITE)
        except DatabaseUnavailable as error:  # a schema too new, a failed step: its own line
            await self.close()
            logger.error("%s", error)
            raise
        except (sqlite3.Error, OSError) as error:
            await self.close()
            message = f"Cannot use DATABASE {self.path!r}: {error}"
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.access(folder, os.W_OK):  # a read-only install's default, say
                message += f"; set DATABASE, or make {folder} exist and be writable by this user"
            logger.error(message)
            raise DatabaseUnavailable(message) from error
        except BaseException:
            await self.close()
            raise

    @asynccontextmanager
    async def waiting_for_migrations(self, connection: SQLiteConnection) -> AsyncIterator[None]:
        """Let the block wait up to MIGRATION_WAIT for another process's schema migration.

        A step can hold the write lock far longer than a request should wait for it (keying
        100,000 names took 15 s): with the busy timeout alone, every other starting process
        gave up with "database is locked" while the first one migrated.
        """
        await connection.raw.execute(f"PRAGMA busy_timeout = {MIGRATION_WAIT * 1000}")
        try:
            yield
        finally:
            await connection.raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    async def connect(self) -> aiosqlite.Connection:
        """Open one connection with the pragmas every connection needs."""
        raw = aiosqlite.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            detect_types=sqlite3.PARSE_DECLTYPES,
        )
        connecting = asyncio.ensure_future(raw)
        try:
            await asyncio.shield(connecting)
        except BaseException:
            # Cancelled midway, aiosqlite drops the connection its thread goes on opening,
            # unclosed (Python 3.13 warns): let the connect end, and close what it opened.
            await asyncio.wait([connecting])
            if connecting.exception() is None:
                await raw.close()
            # A failed connect stops the worker thread without waiting for it; wait here,
            # or the thread outlives the event loop it reports back to.
            await asyncio.to_thread(raw._thread.join)
            raise
        try:
            raw.row_factory = aiosqlite.Row
            await self.set_pragmas(raw)
        except BaseException:
            await raw.close()
            raise
        return raw

    async def set_pragmas(self, raw: aiosqlite.Connection) -> None:
        """Switch on WAL and set the per-connection pragmas, retrying while the file is busy.

        The busy timeout (set by connect) covers most waits, but not all: a connection opening
        while the last one closes (checkpointing, removing the WAL) gets SQLITE_BUSY at once,
        seen when eight processes started together on a new file. It is retried until the
        busy timeout has passed, as the busy handler would have waited.
        """
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                await raw.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(BUSY_RETRY_INTERVAL)
        await raw.execute(f"PRAGMA synchronous = {self.synchronous}")
        await raw.execute("PRAGMA foreign_keys = ON")

    async def close(self) -> None:
        """Close every connection; the last close checkpoints and removes the WAL."""
        while self.connections:
            await self.connections.pop().raw.close()
        self.idle = asyncio.Queue()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[SQLiteConnection]:
        """Lend one connection exclusively to the block."""
        connection = await self.idle.get()
        try:
            yield connection
        finally:
            try:
                if connection.may_be_in_transaction:
                    await connection.rollback()
            finally:
                self.idle.put_nowait(connection)

    async def reset_schema(self) -> None:
        """Drop every table and create the schema afresh."""
        async with self.lease() as connection, self.waiting_for_migrations(connection):
            await reset(connection, SQLITE)

    async def backup(self, target: str) -> None:
        """Write a consistent, compacted copy to a new file while others keep writing.

        VACUUM INTO writes to a path, which whoever can write to the target's folder could
        swap for a file of theirs. So the copy is made in a private folder beside the database
        (as safe as the database itself), then written through the descriptor that created the
        target, exclusively and owner-only: the hashes never reach a file another user can read.
        """
        try:
            with private_files.created(target) as descriptor:
                folder = tempfile.mkdtemp(prefix=".backup-", dir=os.path.dirname(self.abspath))
                try:
                    copy = os.path.join(folder, "copy.sqlite")
                    await self.copy_shielded(copy, target)
                    await asyncio.to_thread(copy_into, copy, descriptor)
                finally:
                    shutil.rmtree(folder)
        except FileExistsError as error:
            raise DatabaseUnavailable(f"Backup target {target!r} already exists.") from error
        except private_files.UnsafeFile as error:
            raise DatabaseUnavailable(f"Cannot back up to {target!r}: {error}") from error
        except OSError as error:  # a folder gone since the command checked, no permission
            raise DatabaseUnavailable(f"Cannot back up to {target!r}: {error.strerror}") from error

    @property
    def abspath(self) -> str:
        """Return the database file's absolute path."""
        return os.path.abspath(self.path)

    async def copy_shielded(self, copy: str, target: str) -> None:
        """Run VACUUM INTO copy to its end, even if the caller is cancelled meanwhile."""
        # The copy runs in a connection's thread, which a cancellation does not stop: shielded,
        # so that a cancelled command waits for it to end before removing what it wrote.
        copying = asyncio.ensure_future(self.vacuum_into(copy))
        try:
            await asyncio.shield(copying)
        except BaseException as error:  # a full disk, a cancelled command: no partial copy
            await asyncio.wait({copying})
            copying.cancelled() or copying.exception()  # retrieved: the caller hears of `error`
            if isinstance(error, sqlite3.Error):  # pragma: no cover - needs a full disk
                raise DatabaseUnavailable(f"Cannot back up to {target!r}: {error}") from error
            raise

    async def vacuum_into(self, target: str) -> None:
        """Copy the database into the new file ``target`` (SQLite's VACUUM INTO)."""
        async with self.lease() as connection:
            await connection.execute("VACUUM INTO ?", (target,))


def copy_into(path: str, descriptor: int) -> None:
    """Copy a file's bytes through a descriptor, every one of them."""
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            private_files.write_all(descriptor, chunk)
