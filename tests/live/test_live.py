"""The live index: post changes reach open streams, bounded, resumable, one app at a time."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.testing import connections
from quart.testing.app import LifespanError

from flaskr_async import create_app
from flaskr_async.db import current_database
from flaskr_async.db.postgres import PostgresDatabase
from flaskr_async.db.sqlite import SQLiteDatabase
from flaskr_async.live import LIVE_KEY
from flaskr_async.live import announce
from flaskr_async.live import end_streams
from flaskr_async.live import fit_to_descriptors
from flaskr_async.live import open_files
from flaskr_async.live.broadcast import KEEP_ALIVE
from flaskr_async.live.broadcast import RELOAD
from flaskr_async.live.broadcast import Broadcaster
from flaskr_async.live.broadcast import Listener
from flaskr_async.live.broadcast import Unavailable
from flaskr_async.live.post_events import BATCH
from flaskr_async.live.post_events import MAX_MESSAGE_BYTES
from flaskr_async.live.post_events import SERIALIZE
from flaskr_async.live.post_events import Event
from flaskr_async.live.post_events import News
from flaskr_async.live.post_events import events_after
from flaskr_async.live.post_events import newest_events
from flaskr_async.live.post_events import record
from flaskr_async.live.sources import APPLICATION_NAME
from flaskr_async.live.sources import PostgresListener
from flaskr_async.live.sources import SQLitePoller
from flaskr_async.live.sources import data_version
from flaskr_async.settings import DEFAULTS
from tests.helpers import AuthActions
from tests.helpers import serving
from tests.servers import ROOT
from tests.silent_proxy import SilentProxy

WAIT = 5.0  # seconds an expected event may take (the poll interval is 0.02 s)


@pytest.fixture
def live_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """Return the test settings with quick change checks."""
    return {**app_config, "LIVE_POLL_INTERVAL": 0.02, "LIVE_KEEPALIVE_INTERVAL": 30}


@pytest.fixture
async def live_app(live_config: dict[str, Any]) -> AsyncIterator[Quart]:
    """Serve an app with quick change checks, on the fixture rows."""
    async with serving(live_config) as app:
        yield app


class Reader:
    """Read Server-Sent Events messages from one open test connection."""

    def __init__(self, connection: connections.TestHTTPConnection) -> None:
        self.connection = connection
        self.buffer = b""

    async def message(self, timeout: float = WAIT) -> dict[str, str]:
        """Return the next message's fields (a comment as ``comment``)."""
        while b"\n\n" not in self.buffer:
            self.buffer += await asyncio.wait_for(self.connection.receive(), timeout)
        raw, self.buffer = self.buffer.split(b"\n\n", 1)
        fields: dict[str, str] = {}
        for line in raw.decode().split("\n"):
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.strip()
        return fields

    async def event(self, timeout: float = WAIT) -> dict[str, Any]:
        """Return the next event (skipping the retry field and comments), its data decoded."""
        while "event" not in (fields := await self.message(timeout)):
            pass
        return {**fields, "data": json.loads(fields["data"])}

    async def ended(self) -> bool:
        """Tell whether the stream ends (its last, empty, body chunk) before any further event."""
        while chunk := await asyncio.wait_for(self.connection.receive(), WAIT):
            assert b"event:" not in chunk
        return True


@asynccontextmanager
async def listening(app: Quart, headers: dict[str, str] | None = None) -> AsyncIterator[Reader]:
    """Open the event stream for the block, as a browser's EventSource would."""
    connection = app.test_client().request("/events", headers=headers)
    assert isinstance(connection, connections.TestHTTPConnection)
    async with connection:
        await connection.send_complete()
        reader = Reader(connection)
        try:
            yield reader
        finally:
            await connection.disconnect()


async def logged_in(app: Quart) -> AuthActions:
    """Return login helpers of a new client, logged in as the fixture user."""
    auth = AuthActions(app.test_client())
    await auth.login()
    return auth


async def create(auth: AuthActions, title: str = "live", body: str = "a body") -> None:
    """Create a post through the view."""
    response = await auth.client.post("/create", form={"title": title, "body": body})
    assert response.status_code == 302


async def newest_post_id(app: Quart) -> int:
    """Return the newest post's id."""
    async with app.app_context():
        row = await current_database().fetch_one("SELECT max(id) AS id FROM post")
    assert row is not None
    return int(row["id"])


async def title_of(app: Quart, event: dict[str, Any]) -> str:
    """Return the title of the post an event is about."""
    async with app.app_context():
        row = await current_database().fetch_one(
            "SELECT title FROM post WHERE id = ?", (event["data"]["id"],)
        )
    assert row is not None
    return str(row["title"])


async def test_create_update_delete_reach_a_listener(live_app: Quart) -> None:
    auth = await logged_in(live_app)
    async with listening(live_app) as reader:
        first = await reader.message()
        assert first == {"retry": "2000"}
        await create(auth, "a new title", "line 1\nline 2")
        created = await reader.event()
        post_id = await newest_post_id(live_app)
        assert created["event"] == "created"
        # The post's id alone: an event's size never depends on what the post holds.
        assert created["data"] == {"id": post_id}
        await auth.client.post(f"/{post_id}/update", form={"title": "edited", "body": "new"})
        updated = await reader.event()
        assert (updated["event"], updated["data"]) == ("updated", {"id": post_id})
        await auth.client.post(f"/{post_id}/delete")
        deleted = await reader.event()
        assert (deleted["event"], deleted["data"]) == ("deleted", {"id": post_id})
        ids = [int(event["id"]) for event in (created, updated, deleted)]
        assert ids == sorted(ids) and len(set(ids)) == 3


async def test_the_stream_response(live_app: Quart) -> None:
    async with listening(live_app) as reader:
        await reader.message()
        connection = reader.connection
        assert connection.status_code == 200
        assert connection.headers is not None
        assert connection.headers["Content-Type"].startswith("text/event-stream")
        assert connection.headers["Cache-Control"] == "no-store"
        assert connection.headers["X-Accel-Buffering"] == "no"
        assert "Set-Cookie" not in connection.headers


async def test_a_rolled_back_write_is_never_announced(live_app: Quart) -> None:
    async with listening(live_app) as reader:
        async with live_app.app_context():
            with pytest.raises(RuntimeError):
                async with current_database().transaction(serialize=SERIALIZE) as tx:
                    await tx.execute(
                        "INSERT INTO post (title, body, author_id) VALUES ('gone', 'b', 1)"
                    )
                    await record(tx, 999, "created")
                    raise RuntimeError("roll back")
        await create(await logged_in(live_app), "kept")
        assert await title_of(live_app, await reader.event()) == "kept"


async def test_keep_alive_comments(live_config: dict[str, Any]) -> None:
    async with serving({**live_config, "LIVE_KEEPALIVE_INTERVAL": 1}) as app:
        async with listening(app) as reader:
            await reader.message()
            assert await reader.message() == {"comment": "keep-alive"}


async def test_quarts_response_timeout_never_cuts_a_stream(live_config: dict[str, Any]) -> None:
    config = {**live_config, "RESPONSE_TIMEOUT": 0.1}
    async with serving(config) as app, listening(app) as reader:
        await reader.message()
        await asyncio.sleep(0.3)
        await create(await logged_in(app), "after the response timeout")
        assert await title_of(app, await reader.event()) == "after the response timeout"


async def test_a_full_worker_answers_503(live_config: dict[str, Any]) -> None:
    # Two clients, one stream each (a client's share must be below the total): the third
    # client is refused because the worker is full, not for its share.
    config = {**live_config, "LIVE_MAX_STREAMS": 2, "LIVE_STREAMS_PER_CLIENT": 1}
    async with serving({**config, "PROXY_FIX_TRUSTED_HOPS": 1}) as app:
        first, second, third = ({"X-Forwarded-For": f"192.0.2.{n}"} for n in (1, 2, 3))
        async with listening(app, first) as one, listening(app, second) as two:
            await one.message()
            await two.message()
            response = await app.test_client().get("/events", headers=third)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
        # Closed streams free their places.
        async with listening(app) as three:
            assert await three.message() == {"retry": "2000"}
            assert current_broadcaster_of(app).open_streams == 1


def current_broadcaster_of(app: Quart) -> Broadcaster:
    """Return a serving app's broadcaster."""
    broadcaster: Broadcaster = app.extensions[LIVE_KEY]
    return broadcaster


async def test_last_event_id_catches_up(live_app: Quart) -> None:
    auth = await logged_in(live_app)
    async with listening(live_app) as reader:
        for title in ("one", "two", "three"):
            await create(auth, title)
        first = await reader.event()
        await reader.event()
        await reader.event()
    async with listening(live_app, {"Last-Event-ID": first["id"]}) as resumed:
        assert await resumed.message() == {"retry": "2000"}
        assert [await title_of(live_app, await resumed.event()) for _ in range(2)] == [
            "two",
            "three",
        ]


async def test_the_page_resumes_from_the_event_it_was_rendered_at(live_app: Quart) -> None:
    page = await (await live_app.test_client().get("/")).get_data(as_text=True)
    assert 'src="/static/live.js" defer' in page
    assert 'data-stream="/events?since=0"' in page
    await create(await logged_in(live_app), "written before the stream opened")
    await asyncio.sleep(0.2)  # polled: the worker knows the event before the stream opens
    connection = live_app.test_client().request("/events", query_string={"since": "0"})
    assert isinstance(connection, connections.TestHTTPConnection)
    async with connection:
        await connection.send_complete()
        event = await Reader(connection).event()
        assert await title_of(live_app, event) == "written before the stream opened"
        await connection.disconnect()


@pytest.mark.parametrize("query", ["?before=2", "?after=1"])
async def test_only_the_first_page_is_live(live_app: Quart, query: str) -> None:
    page = await (await live_app.test_client().get("/" + query)).get_data(as_text=True)
    assert "live.js" not in page


@pytest.mark.parametrize("value", ["x", "-1", "1.5", "9" * 30, "١"])
async def test_a_resume_point_that_is_not_an_event_id_is_400(live_app: Quart, value: str) -> None:
    client = live_app.test_client()
    assert (await client.get("/events", headers={"Last-Event-ID": value})).status_code == 400
    assert (await client.get("/events", query_string={"since": value})).status_code == 400


async def test_beyond_the_history_the_page_is_told_to_reload(live_config: dict[str, Any]) -> None:
    async with serving({**live_config, "LIVE_HISTORY": 2}) as app:
        auth = await logged_in(app)
        async with listening(app) as reader:
            # One at a time: the table itself keeps two, and a poll may come after two writes.
            received = []
            for title in ("one", "two", "three", "four"):
                await create(auth, title)
                received.append(await reader.event())
            first, second = received[:2]
        async with listening(app, {"Last-Event-ID": first["id"]}) as late:
            assert await late.message() == {"retry": "2000"}
            assert await late.message() == {"event": "reload", "data": "{}"}
        async with listening(app, {"Last-Event-ID": second["id"]}) as in_time:
            await in_time.message()
            assert await title_of(app, await in_time.event()) == "three"
        # The table keeps the newest LIVE_HISTORY events, and the one before them.
        async with app.app_context():
            assert len(await newest_events(current_database(), 10)) == 3


async def test_a_restarted_app_catches_up_from_the_database(live_config: dict[str, Any]) -> None:
    async with serving(live_config) as app:
        auth = await logged_in(app)
        for title in ("one", "two"):
            await create(auth, title)
        async with app.app_context():
            events = await newest_events(current_database(), 10)
    again = create_app(live_config)
    async with again.test_app():
        assert current_broadcaster_of(again).last_id == events[-1].id
        async with listening(again, {"Last-Event-ID": str(events[0].id)}) as reader:
            assert await title_of(again, await reader.event()) == "two"


@pytest.mark.sqlite_only  # a second database is one more file; the broadcaster is the same
async def test_two_apps_in_one_process_hear_only_their_own(
    live_config: dict[str, Any], tmp_path: Path, backend: str
) -> None:
    other_config = {**live_config, "DATABASE": str(tmp_path / "other.sqlite")}
    async with serving(live_config) as one, serving(other_config) as two:
        async with listening(one) as hears, listening(two) as deaf:
            await create(await logged_in(one), "for one")
            assert await title_of(one, await hears.event()) == "for one"
            await deaf.message()  # the retry field
            with pytest.raises(TimeoutError):
                await deaf.message(timeout=0.3)
        assert current_broadcaster_of(one) is not current_broadcaster_of(two)


async def test_open_streams_hold_no_pooled_connection(live_config: dict[str, Any]) -> None:
    async with serving({**live_config, "DATABASE_POOL_SIZE": 1}) as app:
        async with (
            listening(app) as a,
            listening(app) as b,
            listening(app) as c,
        ):
            for reader in (a, b, c):
                await reader.message()
            async with app.app_context():
                async with asyncio.timeout(1), current_database().lease() as connection:
                    assert await connection.fetch_one("SELECT 1 AS one") is not None
            assert (await app.test_client().get("/")).status_code == 200


async def test_stopping_ends_every_stream_and_refuses_new_ones(live_app: Quart) -> None:
    async with listening(live_app) as one, listening(live_app) as two:
        await one.message()
        await two.message()
        end_streams(live_app)  # what the serve command's shutdown trigger calls
        assert await one.ended()
        assert await two.ended()
        assert (await live_app.test_client().get("/events")).status_code == 503


def event(number: int) -> Event:
    """Return an event of the largest size, with an id."""
    message = f"id: {number}\nevent: created\ndata: {{}}\n\n".encode()
    return Event(number, message.ljust(MAX_MESSAGE_BYTES, b" "))


def broadcaster_of(**bounds: int) -> Broadcaster:
    """Return a broadcaster with small bounds, overridden by ``bounds``."""
    return Broadcaster(
        **{"max_streams": 5, "per_client": 5, "queue_size": 5, "history": 10, **bounds}
    )


def test_a_listener_that_does_not_read_is_dropped() -> None:
    broadcaster = broadcaster_of(queue_size=2)
    slow = broadcaster.listen(None, "a")
    broadcaster.publish([event(1), event(2)])
    assert slow in broadcaster.listeners
    broadcaster.publish([event(3)])
    assert slow not in broadcaster.listeners
    # Its stream ends next, without the messages it did not read; its slot stays taken
    # until its response has really ended.
    assert slow.ended and slow.take() == b""
    assert broadcaster.open_streams == 1
    broadcaster.release(slow)
    broadcaster.release(slow)  # however many ways the response ends, it is freed once
    assert broadcaster.open_streams == 0


def test_an_event_read_twice_is_sent_once() -> None:
    broadcaster = broadcaster_of()
    listener = broadcaster.listen(None, "a")
    broadcaster.publish([event(1), event(2)])
    broadcaster.publish([event(2), event(3)])
    assert listener.take() == b"".join(event(n).message for n in (1, 2, 3))
    assert listener.take() == b""


@pytest.mark.parametrize(
    ("since", "missed"),
    [(None, []), (5, []), (9, []), (4, [5]), (3, [4, 5]), (2, "reload"), (0, "reload")],
)
def test_what_a_reconnecting_listener_missed(since: int | None, missed: Any) -> None:
    broadcaster = broadcaster_of(history=2)
    broadcaster.publish([event(n) for n in range(1, 6)])
    listener = broadcaster.listen(since, "a")
    expected = RELOAD if missed == "reload" else b"".join(event(n).message for n in missed)
    assert listener.take() == expected


@pytest.mark.parametrize(("queue_size", "history"), [(1, 10), (3, 10), (5, 3), (64, 1000)])
def test_a_catch_up_never_passes_the_streams_byte_bound(queue_size: int, history: int) -> None:
    broadcaster = broadcaster_of(queue_size=queue_size, history=history)
    broadcaster.publish([event(n) for n in range(1, history + 1)])
    for since in range(history + 1):
        listener = broadcaster.listen(since, "a")
        catch_up = listener.take()
        assert len(catch_up) <= queue_size * MAX_MESSAGE_BYTES
        behind = history - since
        assert catch_up == (RELOAD if behind > queue_size else catch_up)
        broadcaster.release(listener)


def test_events_lost_unread_tell_every_page_to_reload() -> None:
    broadcaster = broadcaster_of()
    listener = broadcaster.listen(None, "a")
    broadcaster.publish([event(1)])
    listener.take()
    broadcaster.publish([event(9)], missed=True)
    assert listener.take() == RELOAD + event(9).message
    # A page that last saw event 1 cannot be caught up past the gap either.
    assert broadcaster.listen(1, "b").take() == RELOAD


def test_each_client_has_its_share_and_the_worker_its_maximum() -> None:
    broadcaster = broadcaster_of(max_streams=5, per_client=2)
    first = [broadcaster.listen(None, "192.0.2.1") for _ in range(2)]
    with pytest.raises(Unavailable):
        broadcaster.listen(None, "192.0.2.1")
    others = [broadcaster.listen(None, f"192.0.2.{n}") for n in (2, 3, 4)]
    with pytest.raises(Unavailable):
        broadcaster.listen(None, "192.0.2.5")
    broadcaster.release(first[0])
    broadcaster.listen(None, "192.0.2.1")
    assert broadcaster.open_streams == 5 and others


def test_ending_a_full_listener() -> None:
    listener = Listener("a", MAX_MESSAGE_BYTES)
    assert listener.send(event(1).message)
    assert not listener.send(b"y")
    listener.end()
    assert not listener.send(b"z")
    assert listener.ended and listener.take() == b""


@pytest.mark.sqlite_only
async def test_a_failed_poll_is_logged_and_retried(
    live_app: Quart, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with live_app.app_context():
        async with current_database().lease() as connection:
            await connection.execute("ALTER TABLE post_event RENAME TO post_event_away")
            with caplog.at_level(logging.WARNING, "flaskr_async"):
                await asyncio.sleep(0.2)
            await connection.execute("ALTER TABLE post_event_away RENAME TO post_event")
    assert "Live index: reading new post events failed" in caplog.text
    async with listening(live_app) as reader:
        await create(await logged_in(live_app), "after the failure")
        assert await title_of(live_app, await reader.event()) == "after the failure"


@pytest.mark.postgresql_only
async def test_the_postgres_listener_reconnects(
    live_app: Quart, backend: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        with caplog.at_level(logging.INFO, "flaskr_async"):
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = $1",
                APPLICATION_NAME,
            )
            assert terminated == 1
            async with listening(live_app) as reader:
                for _ in range(100):
                    if "listener reconnected" in caplog.text:
                        break
                    await asyncio.sleep(0.05)
                await create(await logged_in(live_app), "after the reconnection")
                event = await reader.event()
                assert await title_of(live_app, event) == "after the reconnection"
    finally:
        await admin.close()
    assert "the PostgreSQL listener's connection was lost" in caplog.text


async def test_an_event_carries_ids_alone_whatever_the_post_holds(live_app: Quart) -> None:
    auth = await logged_in(live_app)
    # The largest post allowed, of a character JSON escapes six-fold (controls are refused).
    await create(auth, "\u00e9" * 200, "\u00e9" * (32 * 1024))
    post_id = await newest_post_id(live_app)
    await auth.client.post(f"/{post_id}/update", form={"title": "t", "body": "b" * 60000})
    await auth.client.post(f"/{post_id}/delete")
    async with live_app.app_context():
        events = await newest_events(current_database(), 3)
    for event, kind in zip(events, ("created", "updated", "deleted"), strict=True):
        assert event.message == (
            f'id: {event.id}\nevent: {kind}\ndata: {{"id": {post_id}}}\n\n'.encode()
        )
        assert len(event.message) <= MAX_MESSAGE_BYTES


async def test_the_postgres_listener_retries_until_it_can_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = PostgresListener(
        PostgresDatabase("postgresql://127.0.0.1:1/none", pool_size=1), 0.01
    )
    with caplog.at_level(logging.WARNING, "flaskr_async"):
        task = asyncio.create_task(listener.reconnect())
        while caplog.text.count("cannot reconnect the listener yet") < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_ending_the_streams_of_an_app_that_never_served() -> None:
    end_streams(create_app({"TESTING": True, "DATABASE": "unused.sqlite"}))


async def test_a_poller_never_opened_closes(tmp_path: Path) -> None:
    poller = SQLitePoller(
        SQLiteDatabase.from_config({**DEFAULTS, "DATABASE": str(tmp_path / "x.sqlite")}, None), 1
    )
    await poller.close()


async def test_events_are_read_in_batches(live_app: Quart) -> None:
    count = BATCH * 2 + 7
    async with live_app.app_context(), current_database().transaction() as tx:
        for n in range(count):
            await tx.execute("INSERT INTO post_event (post_id, kind) VALUES (?, 'deleted')", (n,))
    async with live_app.app_context():
        news = await events_after(current_database(), 0)
    assert [event.id for event in news.events] == list(range(1, count + 1))
    assert not news.missed


@pytest.mark.sqlite_only
async def test_a_failed_start_closes_the_change_source(
    live_config: dict[str, Any], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreadable(*_: object) -> list[Event]:
        raise OSError("the disk went away")

    monkeypatch.setattr("flaskr_async.live.newest_events", unreadable)
    app = create_app(live_config)
    with pytest.raises(LifespanError, match="the disk went away"):
        async with app.test_app():
            pass  # pragma: no cover - start-up fails
    # The autouse check: neither the poller's connection nor the pool's is left open.


async def test_an_older_database_gets_the_event_table_at_start_up(
    live_config: dict[str, Any],
) -> None:
    async with serving(live_config) as app:
        async with app.app_context(), current_database().transaction() as tx:
            # A database at schema version 4, the last without the event table.
            await tx.execute("DROP TABLE post_event")
            await tx.execute("DELETE FROM schema_version WHERE version >= 5")
    again = create_app(live_config)
    async with again.test_app():
        async with listening(again) as reader:
            await create(await logged_in(again), "on the upgraded database")
            event = await reader.event()
            assert await title_of(again, event) == "on the upgraded database"


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[SilentProxy]:
    """Forward connections to the test database through a proxy that can fall silent."""
    async with SilentProxy(database_url) as proxy:
        yield proxy


class Published:
    """Collect what a change source publishes, as the broadcaster would."""

    def __init__(self) -> None:
        self.last_id = 0
        self.batches: asyncio.Queue[list[Event]] = asyncio.Queue()

    def publish(self, news: News) -> None:
        """Keep a batch read (maybe empty)."""
        if news.events:
            self.last_id = news.events[-1].id
        self.batches.put_nowait(news.events)

    async def read(self) -> list[Event]:
        """Return the next batch read."""
        return await asyncio.wait_for(self.batches.get(), WAIT)

    async def event(self) -> Event:
        """Return the next event read."""
        while not (batch := await self.read()):
            pass
        [event] = batch
        return event


@asynccontextmanager
async def listening_through(
    proxy: SilentProxy, check: float, deadline: float
) -> AsyncIterator[Published]:
    """Run a PostgreSQL listener through the proxy; yield once it waits for a NOTIFY."""
    listener = PostgresListener(
        PostgresDatabase(proxy.url, pool_size=1), 0.01, check=check, deadline=deadline
    )
    published = Published()
    await listener.open()
    task = asyncio.create_task(listener.run(lambda: published.last_id, published.publish))
    try:
        await published.read()  # the first read, before any NOTIFY
        yield published
    finally:
        task.cancel()
        await asyncio.wait({task})
        await listener.close()


async def write_event(app: Quart) -> None:
    """Record a post change through the app's pool, as a post write does (NOTIFY included)."""
    async with app.app_context(), current_database().transaction() as tx:
        await record(tx, 1, "updated")


@pytest.mark.postgresql_only
async def test_a_silent_postgres_listener_is_noticed_and_replaced(
    live_app: Quart, backend: str, proxy: SilentProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "flaskr_async"):
        async with listening_through(proxy, check=0.2, deadline=0.5) as published:
            # Two checks sent: the first was answered, on a connection still healthy (the
            # second may still be in flight: then its answer is lost, and it misses the deadline).
            await asyncio.wait_for(proxy.until_forwarded(b"SELECT 1", 2), WAIT)
            proxy.freeze()
            await write_event(live_app)  # its NOTIFY never reaches the listener
            event = await published.event()
    assert event.message.endswith(b'event: updated\ndata: {"id": 1}\n\n')
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Live index: the PostgreSQL listener did not answer within 0.5 s; reconnecting"
    ]
    assert "the PostgreSQL listener reconnected" in caplog.text


@pytest.mark.postgresql_only
async def test_a_read_on_a_silent_postgres_listener_is_bounded(
    live_app: Quart, backend: str, proxy: SilentProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "flaskr_async"):
        # No check in the test's time: only the read's deadline can notice the silence.
        async with listening_through(proxy, check=60, deadline=0.5) as published:
            proxy.freeze_on(b"")  # the listener's next request: the read its NOTIFY starts
            await write_event(live_app)
            event = await published.event()
    assert event.message.endswith(b'event: updated\ndata: {"id": 1}\n\n')
    assert "did not answer within 0.5 s; reconnecting" in caplog.text


@pytest.mark.postgresql_only
async def test_a_listen_that_gets_no_answer_is_retried(
    backend: str, proxy: SilentProxy, caplog: pytest.LogCaptureFixture
) -> None:
    listener = PostgresListener(
        PostgresDatabase(proxy.url, pool_size=1), 0.01, check=60, deadline=0.5
    )
    proxy.freeze_on(b"LISTEN")
    try:
        with caplog.at_level(logging.INFO, "flaskr_async"):
            await asyncio.wait_for(listener.reconnect(), WAIT)
    finally:
        await listener.close()
    assert "cannot reconnect the listener yet: TimeoutError" in caplog.text
    assert "the PostgreSQL listener reconnected" in caplog.text


@pytest.mark.postgresql_only
async def test_a_check_on_a_lost_connection_reconnects(
    backend: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    listener = PostgresListener(
        PostgresDatabase(database_url, pool_size=1), 0.01, check=0.01, deadline=WAIT
    )
    await listener.open()
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1",
            APPLICATION_NAME,
        )
        await asyncio.wait_for(listener.wake.wait(), WAIT)  # the connection's end, heard
        # As if the check started just as the connection ended, before the wake-up was seen.
        listener.wake.clear()
        with caplog.at_level(logging.WARNING, "flaskr_async"):
            await asyncio.wait_for(listener.next_notify(), WAIT)
        assert listener.connection is not None
        assert not listener.connection.raw.is_closed()
    finally:
        await admin.close()
        await listener.close()
    assert "the PostgreSQL listener's check failed (connection is closed)" in caplog.text


@pytest.mark.postgresql_only
async def test_closing_a_silent_postgres_listener_is_bounded(
    backend: str, proxy: SilentProxy
) -> None:
    listener = PostgresListener(
        PostgresDatabase(proxy.url, pool_size=1), 0.01, check=60, deadline=0.5
    )
    await listener.open()
    assert listener.connection is not None
    raw = listener.connection.raw
    proxy.freeze()
    await asyncio.wait_for(listener.close(), WAIT)
    assert listener.connection is None
    assert raw.is_closed()


@pytest.mark.parametrize(
    ("soft", "hard", "in_use", "wanted", "streams", "raised_to", "share", "cut"),
    [
        (1024, 1024, 0, 100, 100, None, 8, 8),  # fits
        (1024, 1024, 21, 510, 501, None, 8, 8),  # does not fit with the files in use
        (1024, 4096, 0, 1000, 1000, 2000, 8, 8),  # fits once the soft limit is raised
        (1024, 4096, 21, 1000, 1000, 2021, 8, 8),  # raised for the files in use too
        (1024, 1500, 0, 1000, 750, 1500, 8, 8),  # raised as far as allowed, then clamped
        (256, 256, 0, 1000, 128, None, 8, 8),  # clamped: half the limit stays for the rest
        (256, 256, 22, 1000, 117, None, 8, 8),  # half of what is not in use at start-up
        (2, 2, 0, 1000, 1, None, 8, 8),  # never below one stream (with one, no share to keep)
        (30, 30, 40, 1000, 1, None, 8, 8),  # already past the limit: still one
        (resource.RLIM_INFINITY, resource.RLIM_INFINITY, 21, 100_000, 100_000, None, 1000, 1000),
        (1024, resource.RLIM_INFINITY, 0, 1000, 1000, 2000, 8, 8),
        # attack 26: ulimit -n 40 cut the total to 20, and one client held all 20 (the 21
        # files open at start-up left no room for a request then)
        (40, 40, 0, 1000, 20, None, 20, 19),
        (40, 40, 21, 1000, 9, None, 20, 8),
        (40, 40, 0, 1000, 20, None, 500, 19),
        (40, 40, 0, 1000, 20, None, 19, 19),
        (4, 4, 0, 1000, 2, None, 8, 1),
    ],
)
def test_streams_and_the_share_fit_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    soft: int,
    hard: int,
    in_use: int,
    wanted: int,
    streams: int,
    raised_to: int | None,
    share: int,
    cut: int,
) -> None:
    limits = {"now": (soft, hard)}
    monkeypatch.setattr(resource, "getrlimit", lambda _: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: limits.update(now=value))
    with caplog.at_level(logging.INFO, "flaskr_async"):
        assert fit_to_descriptors(wanted, share, in_use) == (streams, cut)
    assert limits["now"] == ((raised_to, hard) if raised_to else (soft, hard))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == (streams < wanted)
    limit = limits["now"][0]
    assert all(f"does not fit the open-file limit ({limit}, {in_use} of" in w for w in warnings)
    said = f"LIVE_STREAMS_PER_CLIENT = {share} cut to {cut} so that no client holds them all"
    assert [said in line for line in warnings] == [cut < share] * len(warnings)


def test_the_files_in_use_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    before = open_files()
    with open(os.devnull):
        assert open_files() == before + 1

    def no_such_folder(path: str) -> list[str]:
        raise FileNotFoundError(path)

    monkeypatch.setattr(os, "listdir", no_such_folder)  # not Linux
    assert open_files() == 0


@pytest.mark.sqlite_only
async def test_an_unreadable_data_version_still_polls(
    live_app: Quart, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def locked(*_: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    async with live_app.app_context():
        async with current_database().lease() as connection:
            monkeypatch.setattr(connection, "fetch_one", locked)
            assert await data_version(connection) is None


async def test_a_stream_ends_after_its_lifetime_and_frees_its_slot(
    live_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lifetime's spread, drawn as small as it goes: the 10 s lifetime is over in 0.1 s,
    # and the next keep-alive tick ends the stream.
    monkeypatch.setattr("flaskr_async.live.broadcast.random.uniform", lambda low, high: 0.01)
    config = {**live_config, "LIVE_STREAM_LIFETIME": 10, "LIVE_KEEPALIVE_INTERVAL": 1}
    async with serving(config) as app:
        async with listening(app) as reader:
            assert await reader.message() == {"retry": "2000"}
            assert await reader.ended()
        assert current_broadcaster_of(app).open_streams == 0


def test_a_tick_keeps_idle_streams_alive_and_ends_old_ones() -> None:
    broadcaster = broadcaster_of(queue_size=1)
    idle, busy, old = (broadcaster.listen(None, client) for client in "abc")
    old.ends_at = 100.0
    broadcaster.tick(now=50.0)  # the first tick: nothing is idle yet
    assert idle.take() == busy.take() == old.take() == b""
    busy.send(event(1).message)
    broadcaster.tick(now=100.0)
    assert idle.take() == KEEP_ALIVE
    assert busy.take() == event(1).message  # it was sent something: no comment needed
    assert old.ended and old not in broadcaster.listeners
    # A stream whose queue is full cannot take its keep-alive: it is dropped.
    idle.send(event(2).message)
    idle.idle = True
    broadcaster.tick(now=101.0)
    assert idle.ended


async def test_announcing_outside_serving_does_nothing(live_config: dict[str, Any]) -> None:
    app = create_app(live_config)
    async with app.app_context():
        announce()  # a command's write, or a stopping worker's: nothing to wake


@pytest.mark.parametrize(
    ("writes", "reload", "kept"), [(1, False, 1), (2, False, 2), (3, True, 3), (5, True, 3)]
)
async def test_events_lost_between_two_reads_tell_an_open_page_to_reload(
    live_config: dict[str, Any], writes: int, reload: bool, kept: int
) -> None:
    async with serving({**live_config, "LIVE_HISTORY": 2}) as app:
        async with listening(app) as reader:
            await create(await logged_in(app), "seen")
            await reader.event()
            # Writes in one transaction: the worker's next read sees them all at once, as
            # happens when more writes than LIVE_HISTORY commit within one interval.
            async with app.app_context():
                async with current_database().transaction(serialize=SERIALIZE) as tx:
                    for _ in range(writes):
                        await record(tx, 1, "updated")
            received = [await reader.message() for _ in range(reload + kept)]
    # Up to LIVE_HISTORY writes lose nothing. Past it, pruning may have removed one the page
    # never saw (PostgreSQL's ids can have gaps, so three writes cannot prove none was): told.
    kinds = [message["event"] for message in received]
    assert kinds == ["reload"] * reload + ["updated"] * kept


def test_the_readme_states_the_largest_event() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"at most {MAX_MESSAGE_BYTES} bytes each" in readme
    assert f"larger than {MAX_MESSAGE_BYTES} bytes" in readme
