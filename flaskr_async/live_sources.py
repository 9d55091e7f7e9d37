"""Where each worker hears of new post events: one change source, however many listen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from flaskr_async.db import Pool
from flaskr_async.db import Statements
from flaskr_async.db import logger
from flaskr_async.db.postgres import PostgresConnection
from flaskr_async.db.postgres import PostgresDatabase
from flaskr_async.db.sqlite import SQLiteConnection
from flaskr_async.db.sqlite import SQLiteDatabase
from flaskr_async.live_events import News
from flaskr_async.live_events import events_after

APPLICATION_NAME = "flaskr_async live index"  # names the listener in pg_stat_activity
CHANNEL = "flaskr_post_event"  # NOTIFY'd by the rule in schema_postgres.sql

Publish = Callable[[News], None]


class Source:
    """One worker's reader of new events: opened once, then run as a task until cancelled."""

    async def open(self) -> Statements:
        """Open the reader's own connection (never a pooled one); return it for catch-up reads."""
        raise NotImplementedError  # pragma: no cover - every source overrides it

    async def run(self, last_id: Callable[[], int], publish: Publish) -> None:
        """Publish new events as they commit, until cancelled."""
        raise NotImplementedError  # pragma: no cover - every source overrides it

    async def close(self) -> None:
        """Close the reader's connection."""
        raise NotImplementedError  # pragma: no cover - every source overrides it


class SQLitePoller(Source):
    """Check for commits every ``interval`` seconds on a dedicated connection; read if any.

    ``PRAGMA data_version`` changes when another connection (any worker's) has committed: a
    check that reads no table, so it can run often enough that a new post reaches open pages
    within about one interval, at an idle cost of one such check per interval.
    """

    def __init__(self, database: SQLiteDatabase, interval: float) -> None:
        self.database = database
        self.interval = interval
        self.connection: SQLiteConnection | None = None

    async def open(self) -> Statements:
        """Open the poller's connection."""
        self.connection = SQLiteConnection(await self.database.connect())
        return self.connection

    async def run(self, last_id: Callable[[], int], publish: Publish) -> None:
        """Read the events past the newest seen whenever the database has changed."""
        assert self.connection is not None
        seen = None
        while True:
            version = await data_version(self.connection)
            if version is None or version != seen:
                seen = version
                await poll_once(self.connection, last_id, publish)
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        """Close the poller's connection."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await connection.raw.close()


async def data_version(db: Statements) -> int | None:
    """Return SQLite's data_version (None when it cannot be read: then the next read happens)."""
    try:
        row = await db.fetch_one("PRAGMA data_version")
    except Exception as error:  # a locked or damaged file: poll_once reports it
        logger.debug("Live index: data_version unreadable: %s", error)
        return None
    assert row is not None
    return int(row[0])


async def poll_once(db: Statements, last_id: Callable[[], int], publish: Publish) -> None:
    """Publish what committed since the last read; log (and outlive) a failed read."""
    try:
        publish(await events_after(db, last_id()))
    except Exception as error:  # a locked or damaged file: the next round tries again
        logger.warning("Live index: reading new post events failed: %s", error)


class PostgresListener(Source):
    """LISTEN on one connection outside the pool; reconnect (and catch up) if it drops."""

    def __init__(self, database: PostgresDatabase, interval: float) -> None:
        self.url = database.url
        self.interval = interval  # between reconnection attempts
        self.connection: PostgresConnection | None = None
        self.wake = asyncio.Event()

    async def open(self) -> Statements:
        """Connect and LISTEN."""
        raw = await asyncpg.connect(
            self.url, server_settings={"timezone": "UTC", "application_name": APPLICATION_NAME}
        )
        self.connection = PostgresConnection(raw)  # set first: close() closes it if LISTEN fails
        raw.add_termination_listener(self.notified)
        await raw.add_listener(CHANNEL, self.notified)
        return self.connection

    def notified(self, *_: object) -> None:
        """Wake the reader: a NOTIFY arrived, or the connection closed."""
        self.wake.set()

    async def run(self, last_id: Callable[[], int], publish: Publish) -> None:
        """Read new events on every NOTIFY; reconnect when the connection is lost."""
        while True:
            if self.connection is None or self.connection.raw.is_closed():
                await self.reconnect()
            assert self.connection is not None
            # Cleared before the read: a NOTIFY arriving during it wakes the next round.
            self.wake.clear()
            await poll_once(self.connection, last_id, publish)
            await self.wake.wait()

    async def reconnect(self) -> None:
        """Open a new listening connection, retrying every interval until one opens."""
        await self.close()
        logger.warning("Live index: the PostgreSQL listener's connection was lost; reconnecting")
        while True:
            try:
                await self.open()
            except Exception as error:  # refused, timed out, shutting down: try again
                await self.close()
                logger.warning("Live index: cannot reconnect the listener yet: %s", error)
                await asyncio.sleep(self.interval)
            else:
                logger.info("Live index: the PostgreSQL listener reconnected")
                return

    async def close(self) -> None:
        """Close the listening connection."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            if not connection.raw.is_closed():
                await connection.raw.close()


def source_for(database: Pool, interval: float) -> Source:
    """Return the change source of the app's backend."""
    if isinstance(database, PostgresDatabase):
        return PostgresListener(database, interval)
    assert isinstance(database, SQLiteDatabase)
    return SQLitePoller(database, interval)
