"""One app's live streams: each with a byte-bounded queue, a share per client, and a history.

Every bound here is in bytes as well as in count: an event message is at most
``MAX_MESSAGE_BYTES`` (post_events.py), so a stream holds at most ``queue_size`` of them unsent
(its catch-up included) and the history at most ``history`` of them.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import time
from collections.abc import Iterable

from flaskr_async.live.post_events import MAX_MESSAGE_BYTES
from flaskr_async.live.post_events import Event
from flaskr_async.live.post_events import News

# Told to a page that missed events the worker can no longer send: it offers a reload.
RELOAD = b"event: reload\ndata: {}\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


class Unavailable(Exception):
    """No stream can open now: the worker or this client has its maximum, or it is stopping."""


class Listener:
    """One open stream's unsent messages, at most ``max_bytes`` of them; ended, it sends no more."""

    def __init__(self, client: str, max_bytes: int, ends_at: float = math.inf) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.ends_at = ends_at  # time.monotonic() when the stream has lived long enough
        self.idle = False  # nothing sent since the last keep-alive tick
        self.pending: list[bytes] = []
        self.size = 0  # bytes pending
        self.ended = False
        self.released = False
        self.ready = asyncio.Event()  # set when something is pending, or the stream ended

    def send(self, message: bytes) -> bool:
        """Queue a message; False if it would pass the bound (the client is not reading)."""
        if self.ended or self.size + len(message) > self.max_bytes:
            return False
        self.pending.append(message)
        self.size += len(message)
        self.idle = False
        self.ready.set()
        return True

    def take(self) -> bytes:
        """Return everything pending as one write, and empty the queue."""
        data = b"".join(self.pending)
        self.pending.clear()
        self.size = 0
        if not self.ended:
            self.ready.clear()
        return data

    def end(self) -> None:
        """End the stream after nothing more: what is pending is dropped."""
        self.pending.clear()
        self.size = 0
        self.ended = True
        self.ready.set()


class Broadcaster:
    """One app's streams, their share per client, and the recent events a page catches up from."""

    def __init__(
        self,
        *,
        max_streams: int,
        per_client: int,
        queue_size: int,
        history: int,
        lifetime: float = math.inf,
    ) -> None:
        self.lifetime = lifetime  # seconds a stream lives before its browser reconnects
        self.max_streams = max_streams
        self.per_client = per_client
        self.queue_bytes = queue_size * MAX_MESSAGE_BYTES
        self.queue_size = queue_size
        self.listeners: set[Listener] = set()  # those still sent to
        self.streams: collections.Counter[str] = collections.Counter()  # open, per client
        self.history: collections.deque[Event] = collections.deque(maxlen=history)
        self.last_id = 0
        self.closed = False

    @property
    def open_streams(self) -> int:
        """Count the streams open now, whether or not they are still sent to."""
        return self.streams.total()

    def publish(self, events: Iterable[Event], missed: bool = False) -> None:
        """Send new events to every listener; drop any that cannot take them.

        ``missed``: events between the last published and these were lost unread, so every
        open page and every catch-up from before them is told to reload.
        """
        if missed:
            self.history.clear()
            self.send_all(RELOAD)
        for event in events:
            if event.id <= self.last_id:
                continue  # read twice (a catch-up beside a notification): sent once
            self.history.append(event)
            self.last_id = event.id
            self.send_all(event.message)

    def hear(self, news: News) -> None:
        """Publish what a change source read."""
        self.publish(news.events, news.missed)

    def send_all(self, message: bytes) -> None:
        """Queue a message for every listener, dropping those whose queue is full."""
        for listener in [*self.listeners]:
            if not listener.send(message):
                self.drop(listener)

    def listen(self, since: int | None, client: str) -> Listener:
        """Open a stream for a client, queued with what it missed after event ``since``."""
        if self.closed or self.open_streams >= self.max_streams:
            raise Unavailable
        if self.streams[client] >= self.per_client:
            raise Unavailable
        # Spread over the last tenth: pages that connected together do not reconnect together.
        lifetime = self.lifetime * random.uniform(0.9, 1.0)
        ends_at = time.monotonic() + lifetime
        listener = Listener(client, self.queue_bytes, ends_at)
        for message in self.missed(since):
            listener.send(message)
        self.streams[client] += 1
        self.listeners.add(listener)
        return listener

    def missed(self, since: int | None) -> list[bytes]:
        """Return the messages after event ``since``, or a reload if they cannot all be sent."""
        if since is None or since >= self.last_id:
            return []
        oldest = self.history[0].id if self.history else self.last_id + 1
        if since < oldest - 1:
            return [RELOAD]
        messages = [event.message for event in self.history if event.id > since]
        # More than a stream may hold unsent: the page reloads instead of catching up.
        return messages if len(messages) <= self.queue_size else [RELOAD]

    def tick(self, now: float) -> None:
        """Send a keep-alive to each stream idle since the last tick; end those past their life."""
        for listener in [*self.listeners]:
            if now >= listener.ends_at:
                self.drop(listener)  # the browser reconnects after the retry delay
            elif listener.idle and not listener.send(KEEP_ALIVE):
                self.drop(listener)
            listener.idle = True

    async def keep_alive(self, interval: float) -> None:
        """Tick every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.tick(time.monotonic())

    def drop(self, listener: Listener) -> None:
        """Stop sending to a listener and end its stream (its browser reconnects, catching up)."""
        self.listeners.discard(listener)
        listener.end()

    def release(self, listener: Listener) -> None:
        """Free a stream's slot: its response has ended, however it ended (once)."""
        self.drop(listener)
        if listener.released:
            return
        listener.released = True
        self.streams[listener.client] -= 1
        if self.streams[listener.client] <= 0:
            del self.streams[listener.client]

    def close(self) -> None:
        """End every stream at once and refuse new ones: the server is stopping."""
        self.closed = True
        for listener in [*self.listeners]:
            self.drop(listener)
