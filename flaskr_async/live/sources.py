"""Where each worker hears of new post events: one change source, however many listen."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from collections.abc import Callable

import asyncpg

from flaskr_async.db import Pool
from flaskr_async.db import Statements
from flaskr_async.db import logger
from flaskr_async.db.postgres import PostgresConnection
from flaskr_async.db.postgres import PostgresDatabase
from flaskr_async.db.sqlite import SQLiteConnection
from flaskr_async.db.sqlite import SQLiteDatabase
from flaskr_async.live.post_events import News
from flaskr_async.live.post_events import events_after

APPLICATION_NAME = "flaskr_async live index"  # names the listener in pg_stat_activity
CHANNEL = "flaskr_post_event"  # NOTIFY'd by the rule in schema_postgres.sql
# A connection dropped without a reset (a NAT or firewall forgetting it, a host that vanished)
# raises no error: only a round trip that goes unanswered shows it. A check every 10 s costs
# the server one trivial query per worker; 5 s is far above a healthy round trip, even across
# regions, so a worker's live index falls at most about 15 s behind before it reconnects.
LISTENER_CHECK = 10.0  # seconds of silence between checks of the listening connection
LISTENER_DEADLINE = 5.0  # seconds a check, a read, a connection attempt may take

Publish = Callable[[News], None]


class Source:
    """One worker's reader of new events: opened once, then run as a task until cancelled."""

    wake: asyncio.Event  # set to read at once

    async def open(self) -> Statements:
        """Open the reader's own connection (never a pooled one); return it for catch-up reads."""
        raise NotImplementedError  # pragma: no cover - every source overrides it

    async def run(self, last_id: Callable[[], int], publish: Publish) -> None:
        """Publish new events as they commit, until cancelled."""
        raise NotImplementedError  # pragma: no cover - every source overrides it

    async def close(self) -> None:
        """Close the reader's connection."""
        raise NotImplementedError  # pragma: no cover - every source overrides it

    def changed(self) -> None:
        """Read now: this worker has just committed a post event."""
        self.wake.set()


class SQLitePoller(Source):
    """Check for commits every ``interval`` seconds on a dedicated connection; read if any.

    ``PRAGMA data_version`` changes when another connection (any worker's) has committed: a
    check that reads no table, so it can run often enough that a new post reaches open pages
    within about one interval, at an idle cost of one such check per interval.
    """

    def __init__(self, database: SQLiteDatabase, interval: float) -> None:
        self.database = database
        self.interval = interval
        self.wake = asyncio.Event()
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
            # Until the next check, or sooner when a write of this worker has committed.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self.wake.wait()
            self.wake.clear()

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
    """LISTEN on one connection outside the pool; reconnect (and catch up) if it drops.

    A dropped connection that was never reset gives no error, so the listener checks it every
    ``check`` seconds of silence, and drops it when a check or a read takes over ``deadline``.
    """

    def __init__(
        self,
        database: PostgresDatabase,
        interval: float,
        check: float = LISTENER_CHECK,
        deadline: float = LISTENER_DEADLINE,
    ) -> None:
        self.url = database.url
        self.interval = interval  # between reconnection attempts
        self.check = check
        self.deadline = deadline
        self.connection: PostgresConnection | None = None
        self.wake = asyncio.Event()

    async def open(self) -> Statements:
        """Connect and LISTEN, each within the deadline."""
        raw = await asyncpg.connect(
            self.url,
            timeout=self.deadline,
            server_settings={"timezone": "UTC", "application_name": APPLICATION_NAME},
        )
        try:
            raw.add_termination_listener(self.notified)
            async with asyncio.timeout(self.deadline):
                await raw.add_listener(CHANNEL, self.notified)
        except BaseException:
            raw.terminate()  # close() would wait on a peer that may not answer
            raise
        self.connection = PostgresConnection(raw)
        return self.connection

    def notified(self, *_: object) -> None:
        """Wake the reader: a NOTIFY arrived, or the connection closed."""
        self.wake.set()

    async def run(self, last_id: Callable[[], int], publish: Publish) -> None:
        """Read new events on every NOTIFY; reconnect when the connection is lost or silent."""
        while True:
            if self.connection is None or self.connection.raw.is_closed():
                await self.reconnect()
            assert self.connection is not None
            # Cleared before the read: a NOTIFY arriving during it wakes the next round.
            self.wake.clear()
            if await self.answered(poll_once(self.connection, last_id, publish)):
                await self.next_notify()

    async def next_notify(self) -> None:
        """Wait for a NOTIFY or the connection's end; check the connection after ``check`` s."""
        assert self.connection is not None
        while True:
            try:
                async with asyncio.timeout(self.check):
                    await self.wake.wait()
                return
            except TimeoutError:
                if not await self.answered(self.connection.raw.execute("SELECT 1")):
                    return

    async def answered(self, operation: Awaitable[object]) -> bool:
        """Await an operation on the listening connection; on a miss, reconnect and say False."""
        assert self.connection is not None
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
        # comes as the operation ends (a NOTIFY at shutdown), and the listener never stopped.
        try:
            async with asyncio.timeout(self.deadline):
                await operation
        except TimeoutError:
            why = f"the PostgreSQL listener did not answer within {self.deadline:g} s"
        except Exception as error:  # the connection failed under the check
            why = f"the PostgreSQL listener's check failed ({error})"
        else:
            return True
        # close() would wait for the peer to acknowledge: terminate() drops the connection now.
        self.connection.raw.terminate()
        await self.reconnect(why)
        return False

    async def reconnect(self, why: str = "the PostgreSQL listener's connection was lost") -> None:
        """Open a new listening connection, retrying every interval until one opens."""
        await self.close()
        logger.warning("Live index: %s; reconnecting", why)
        while True:
            try:
                await self.open()
            except Exception as error:  # refused, timed out, shutting down: try again
                logger.warning(
                    "Live index: cannot reconnect the listener yet: %s",
                    str(error) or type(error).__name__,  # a timeout has no message
                )
                await asyncio.sleep(self.interval)
            else:
                logger.info("Live index: the PostgreSQL listener reconnected")
                return

    async def close(self) -> None:
        """Close the listening connection; drop it if the server does not answer in time."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            if not connection.raw.is_closed():
                try:
                    await connection.raw.close(timeout=self.deadline)
                except TimeoutError:
                    pass  # asyncpg dropped the connection: a silent server never said goodbye


def source_for(database: Pool, interval: float) -> Source:
    """Return the change source of the app's backend."""
    if isinstance(database, PostgresDatabase):
        return PostgresListener(database, interval)
    assert isinstance(database, SQLiteDatabase)
    return SQLitePoller(database, interval)
