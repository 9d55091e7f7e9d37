"""Every write to a client has a deadline: a client that takes nothing for SEND_TIMEOUT loses it.

Two places, because a write can wait in two:
- In the app (any ASGI server): each ``send`` of a response waits at most SEND_TIMEOUT; past it
  the response ends, its resources (a live stream's slot) are freed, and the server closes it.
  This also bounds what HTTP/2 flow control can hold, which never reaches the socket.
- In hypercorn's connection (while the app serves on hypercorn, whichever command started it):
  hypercorn 0.18 has no write timeout, so a client that stops reading holds a ``drain()``, and
  then the connection's close (asyncio flushes before it closes), and so its descriptor, for as
  long as it likes; under Python 3.12+ shutdown waits for every connection to close. Its
  connection class is replaced by one that aborts the connection when a write or the close
  passes the deadline. When the server starts stopping, open live streams end at once and
  a write still waiting gets at most ``STOPPING_GRACE`` seconds from its start.

The same connection class closes a connection as soon as its client has closed it: hypercorn
waited for its keep-alive timer first, holding the socket and its descriptor for 5 s.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator
from collections.abc import Callable
from typing import Any

import hypercorn.asyncio.run
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Closed
from hypercorn.events import Event
from hypercorn.events import Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H2CProtocolRequiredError
from hypercorn.protocol.h11 import H2ProtocolAssumedError
from hypercorn.typing import ASGIFramework
from hypercorn.typing import ASGIReceiveCallable
from hypercorn.typing import ASGISendCallable
from hypercorn.typing import ASGISendEvent
from hypercorn.typing import Scope
from quart import Quart
from quart import current_app

from flaskr_async.live import end_streams

logger = logging.getLogger("flaskr_async")
CONNECTION_CLASS = "TCPServer"  # the name hypercorn.asyncio.run calls for each connection
STOPPING_GRACE = 1.0  # seconds a connection still gets to take its last bytes once stopping


class ClientTooSlow(Exception):
    """A client took nothing of a response within SEND_TIMEOUT."""


class SendDeadline:
    """ASGI middleware giving each ``send`` of an HTTP response a deadline."""

    def __init__(self, app: ASGIFramework, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_in_time(message: ASGISendEvent) -> None:
            try:
                async with asyncio.timeout(self.seconds):
                    await send(message)
            except TimeoutError:
                raise ClientTooSlow from None

        try:
            await self.app(scope, receive, send_in_time)
        except* ClientTooSlow:  # alone, or in a group: Quart 0.23 serves in a TaskGroup
            # Returning ends the response: the server closes the connection (hypercorn, below,
            # aborts it if the client still takes nothing).
            client = scope.get("client")
            logger.info(
                "Ended a response to %s: nothing taken for %s s (SEND_TIMEOUT)",
                client[0] if client else "a client",
                self.seconds,
            )


class DeadlineTCPServer(TCPServer):
    """hypercorn's connection, aborted when a write or its close passes the deadline.

    A write only notes when it started; one sweep per worker aborts the connections whose
    write has waited past the deadline (so a write costs no timer of its own: the live index
    writes to a thousand streams at once). The abort fails the write's ``drain()``, which
    hypercorn handles as a lost connection, and lets a close finish.
    """

    deadline: float  # seconds; set on the subclass that serve_with_deadlines makes
    on_stopping: Callable[[], None]  # called once when the server starts stopping
    writing: dict[DeadlineTCPServer, float]  # the connections mid-write, since when
    connected: weakref.WeakSet[DeadlineTCPServer]  # the connections not yet closed
    watched: weakref.WeakSet[Any]  # the worker contexts swept and watched for stopping
    tasks: set[asyncio.Task[None]]  # held here: the loop keeps only weak references
    reading: asyncio.Future[None]  # hypercorn's read loop (until it starts, a stand-in)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading = self.loop.create_future()
        if self.context not in self.watched:
            self.watched.add(self.context)
            for job in (self.watch_stopping(self.context), self.sweep(self.context)):
                task = asyncio.ensure_future(job)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    @classmethod
    async def watch_stopping(cls, context: Any) -> None:
        """When hypercorn starts stopping, end the streams and shorten every deadline."""
        await context.terminated.wait()
        cls.on_stopping()
        cls.deadline = min(cls.deadline, STOPPING_GRACE)

    @classmethod
    async def sweep(cls, context: Any) -> None:
        """Abort the connections whose write is late, until the worker stops and none is open."""
        loop = asyncio.get_running_loop()
        # Not until none is writing: a response still being made when the stop began writes
        # after it, and a client that takes nothing would then hold the stop for the whole
        # graceful_timeout (seen on PostgreSQL with two workers, under load).
        while not (context.terminated.is_set() and not cls.connected):
            await asyncio.sleep(min(cls.deadline, STOPPING_GRACE) / 4)
            late = loop.time() - cls.deadline
            for connection, since in [*cls.writing.items()]:
                if since <= late:
                    del cls.writing[connection]
                    connection.writer.transport.abort()

    @property  # type: ignore[override]
    def protocol(self) -> HTTP1Only:
        """The connection's protocol: HTTP/1.1 only, unless TLS negotiated HTTP/2."""
        return self._protocol

    @protocol.setter
    def protocol(self, wrapper: ProtocolWrapper) -> None:
        self._protocol = HTTP1Only(wrapper)

    async def run(self) -> None:
        """Serve the connection as hypercorn does, known as open until it is closed."""
        self.connected.add(self)
        try:
            await super().run()
        finally:
            self.connected.discard(self)
            self.writing.pop(self, None)

    async def _read_data(self) -> None:
        # Its own task, so that closing the connection can end it: with pipelined requests
        # queued behind a response the deadline ended, hypercorn's read waits for that
        # response to finish, for ever, holding the connection's task (and the stop).
        self.reading = asyncio.ensure_future(super()._read_data())
        try:
            await asyncio.wait([self.reading])
        finally:
            self.reading.cancel()  # (this connection's own task was cancelled)
        if self.reading.cancelled():  # the connection closed first
            await self.protocol.handle(Closed())  # as hypercorn's read does when it ends
        else:
            self.reading.result()  # what the read raised, as before
        # The client has closed its end (or reading failed): hypercorn has ended the
        # connection's requests but still waits for the idle timer before it closes, so each
        # connection a client closed kept its socket (CLOSE_WAIT) and descriptor for
        # keep_alive_timeout. Nothing more can be read, so nothing is left to time.
        await self.idle_task.stop()

    async def _initiate_server_close(self) -> None:
        # hypercorn closes an idle keep-alive connection here, outside _close(): what is left
        # of the last response in the buffer (under 64 KiB: its drain() did not wait) waits on
        # the flush, which a client that takes nothing held for ever (and every stop for
        # graceful_timeout). The flush has the deadline too, until the connection ends.
        await super()._initiate_server_close()
        self.writing.setdefault(self, self.loop.time())

    async def protocol_send(self, event: Event) -> None:
        """Send as hypercorn does, aborted past the deadline."""
        if isinstance(event, Updated) and event.idle and self.reading.done():
            # Nothing more will be read (a request that came with the client's end, answered):
            # no idle timer to restart (it held the connection for keep_alive_timeout), and
            # with none, it closes.
            return
        self.writing[self] = self.loop.time()
        try:
            await super().protocol_send(event)
        finally:
            self.writing.pop(self, None)

    async def _close(self) -> None:
        self.writing[self] = self.loop.time()
        try:
            await super()._close()
        finally:
            self.writing.pop(self, None)
            self.reading.cancel()  # closed: nothing more will be read


class HTTP1Only:
    """hypercorn's protocol switch, refusing HTTP/2 without TLS (h2c): the connection closes.

    Browsers never speak h2c; only a client talking straight to hypercorn can, and hypercorn
    0.18's HTTP/2 was measured to let one such client hold a worker: connections that never
    open a stream are never closed (every descriptor, from one address), a zero flow-control
    window keeps each response's body in memory (1.6 GB from 6 connections) and holds the
    stop. HTTP/2 is nginx's (deploy/nginx.conf), which limits it per client; a hypercorn that
    terminates TLS itself should offer HTTP/1.1 alone (hypercorn.toml, alpn_protocols).
    """

    def __init__(self, wrapper: ProtocolWrapper) -> None:
        self.wrapper = wrapper

    async def initiate(self) -> None:
        """Start the protocol, as hypercorn's wrapper does."""
        await self.wrapper.initiate()

    async def handle(self, event: Event) -> None:
        """Pass an event to the protocol; close the connection where it would switch to h2c."""
        try:
            await self.wrapper.protocol.handle(event)
        except (H2ProtocolAssumedError, H2CProtocolRequiredError):
            await self.wrapper.send(Closed())


def deadline_server(seconds: float, on_stopping: Callable[[], None]) -> type[DeadlineTCPServer]:
    """Return a connection class with its own deadline and stopping hook (one per app)."""
    return type(
        "DeadlineTCPServer",
        (DeadlineTCPServer,),
        {
            "deadline": seconds,
            "on_stopping": staticmethod(on_stopping),
            "writing": {},
            "connected": weakref.WeakSet(),
            "watched": weakref.WeakSet(),
            "tasks": set(),
        },
    )


async def serve_with_deadlines() -> AsyncGenerator[None, None]:
    """Make hypercorn's new connections keep the deadline while the app serves."""
    app: Quart = current_app._get_current_object()  # type: ignore[attr-defined, unused-ignore]
    module = hypercorn.asyncio.run
    # hypercorn looks its connection class up by this name for each new connection, after
    # the app's start-up and before the first connection is accepted.
    original = getattr(module, CONNECTION_CLASS)
    server = deadline_server(float(app.config["SEND_TIMEOUT"]), lambda: end_streams(app))
    setattr(module, CONNECTION_CLASS, server)
    try:
        yield
    finally:
        setattr(module, CONNECTION_CLASS, original)


def init_app(app: Quart) -> None:
    """Give every write to a client a deadline; call last, so that it wraps every layer."""
    app.asgi_app = SendDeadline(  # type: ignore[method-assign]
        app.asgi_app, float(app.config["SEND_TIMEOUT"])
    )
    app.while_serving(serve_with_deadlines)
