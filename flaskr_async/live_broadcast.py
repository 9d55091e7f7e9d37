"""One app's live listeners, each with a bounded queue, and the history they catch up from."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable

from flaskr_async.live_events import Event

# Told to a page whose Last-Event-ID is older than the history: it offers a reload.
RELOAD = b"event: reload\ndata: {}\n\n"


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
