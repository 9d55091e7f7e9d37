"""The live index: post changes streamed to open pages as Server-Sent Events."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Iterable

from quart import Blueprint
from quart import Quart
from quart import Response
from quart import abort
from quart import current_app
from quart import request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

from flaskr_async.converters import MAX_ID
from flaskr_async.db import current_database
from flaskr_async.db import logger
from flaskr_async.live_sources import Event
from flaskr_async.live_sources import newest_events
from flaskr_async.live_sources import source_for

LIVE_KEY = "flaskr_async.live"
RETRY_MS = 2000  # the browser's reconnection delay after a dropped stream
RETRY_AFTER = 5  # seconds, on a 503 from a full (or stopping) worker
KEEP_ALIVE = b": keep-alive\n\n"
# Told to a page whose Last-Event-ID is older than the history: it offers a reload.
RELOAD = b"event: reload\ndata: {}\n\n"

bp = Blueprint("live", __name__)


class Unavailable(Exception):
    """No stream can open now: the worker has its maximum, or is stopping."""


class Listener:
    """One open stream's bounded queue of messages; None ends the stream."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)

    def send(self, message: bytes) -> bool:
        """Queue a message; False if the queue is full (the listener does not read)."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """End the stream after nothing more: drop what is queued, then the end mark."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Broadcaster:
    """One app's listeners and the recent events a reconnecting page catches up from."""

    def __init__(self, *, max_streams: int, queue_size: int, history: int) -> None:
        self.max_streams = max_streams
        self.queue_size = queue_size
        self.listeners: set[Listener] = set()
        self.history: collections.deque[Event] = collections.deque(maxlen=history)
        self.last_id = 0
        self.closed = False

    def publish(self, events: Iterable[Event]) -> None:
        """Send new events to every listener; drop any whose queue is full."""
        for event in events:
            if event.id <= self.last_id:
                continue  # read twice (a catch-up beside a notification): sent once
            self.history.append(event)
            self.last_id = event.id
            for listener in [*self.listeners]:
                if not listener.send(event.message):
                    self.drop(listener)

    def listen(self, since: int | None) -> tuple[Listener, list[bytes]]:
        """Add a listener; return it with what it missed after event ``since``."""
        if self.closed or len(self.listeners) >= self.max_streams:
            raise Unavailable
        listener = Listener(self.queue_size)
        self.listeners.add(listener)
        return listener, self.missed(since)

    def missed(self, since: int | None) -> list[bytes]:
        """Return the messages after event ``since``, or a reload if history no longer has them."""
        if since is None or since >= self.last_id:
            return []
        oldest = self.history[0].id if self.history else self.last_id + 1
        if since < oldest - 1:
            return [RELOAD]
        return [event.message for event in self.history if event.id > since]

    def drop(self, listener: Listener) -> None:
        """End a listener's stream (its browser reconnects and catches up)."""
        self.listeners.discard(listener)
        listener.end()

    def close(self) -> None:
        """End every stream at once and refuse new ones: the server is stopping."""
        self.closed = True
        for listener in [*self.listeners]:
            self.drop(listener)


class Stream:
    """A stream's body: its messages, and the listener removed however the stream ends."""

    def __init__(self, broadcaster: Broadcaster, listener: Listener, first: list[bytes]) -> None:
        self.broadcaster = broadcaster
        self.listener = listener
        self.messages = self.generate(first, float(current_app.config["LIVE_KEEPALIVE_INTERVAL"]))

    async def generate(self, first: list[bytes], keep_alive: float) -> AsyncGenerator[bytes, None]:
        """Yield the retry delay, what was missed, then each event, with keep-alive comments."""
        yield f"retry: {RETRY_MS}\n\n".encode() + b"".join(first)
        while True:
            try:
                async with asyncio.timeout(keep_alive):
                    message = await self.listener.queue.get()
            except TimeoutError:
                yield KEEP_ALIVE
                continue
            if message is None:
                return
            yield message

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        return await self.messages.__anext__()

    async def aclose(self) -> None:
        """Remove the listener: Quart calls this however the response ends, even unstarted."""
        self.broadcaster.listeners.discard(self.listener)
        await self.messages.aclose()


def current_broadcaster() -> Broadcaster:
    """Return the serving app's broadcaster."""
    return current_app.extensions[LIVE_KEY]  # type: ignore[no-any-return]


def end_streams(app: Quart) -> None:
    """End every open stream of a serving app at once: its server is stopping."""
    broadcaster: Broadcaster | None = app.extensions.get(LIVE_KEY)
    if broadcaster is not None:  # None: the app never started serving
        broadcaster.close()


def last_event_id() -> int:
    """Return the newest event this worker has seen, for the page to resume from."""
    return current_broadcaster().last_id


def resume_point() -> int | None:
    """Read where the page left off: the browser's Last-Event-ID, else the page's ``since``."""
    value = request.headers.get("Last-Event-ID") or request.args.get("since")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID))):
        abort(400, "The stream's resume point must be an event id.")
    return int(value)


@bp.route("/events")
async def events() -> ResponseReturnValue:
    """Stream post changes (created, updated, deleted) as Server-Sent Events."""
    broadcaster = current_broadcaster()
    try:
        listener, first = broadcaster.listen(resume_point())
    except Unavailable:
        raise ServiceUnavailable(retry_after=RETRY_AFTER) from None
    response = Response(
        Stream(broadcaster, listener, first),
        content_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    response.timeout = None  # Quart's RESPONSE_TIMEOUT (60 s) would cut every stream
    return response


async def serve_live() -> AsyncGenerator[None, None]:
    """Broadcast post changes while the app serves (a while_serving hook after the database's)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined, unused-ignore]
    config = app.config
    broadcaster = Broadcaster(
        max_streams=int(config["LIVE_MAX_STREAMS"]),
        queue_size=int(config["LIVE_QUEUE_SIZE"]),
        history=int(config["LIVE_HISTORY"]),
    )
    source = source_for(current_database(), float(config["LIVE_POLL_INTERVAL"]))
    try:
        reader = await source.open()
        broadcaster.publish(await newest_events(reader, int(config["LIVE_HISTORY"])))
    except BaseException:
        await source.close()
        raise
    task = asyncio.create_task(source.run(lambda: broadcaster.last_id, broadcaster.publish))
    app.extensions[LIVE_KEY] = broadcaster
    try:
        yield
    finally:
        del app.extensions[LIVE_KEY]
        broadcaster.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await source.close()
        logger.info("Live index stopped")


def init_app(app: Quart) -> None:
    """Serve the event stream and broadcast while the app serves."""
    app.register_blueprint(bp)
    app.while_serving(serve_live)
