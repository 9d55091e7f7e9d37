"""Every write to a client has a deadline: in the app, and in hypercorn's connections.

And a connection its client closed is released at once, not at hypercorn's keep-alive timeout.

hypercorn runs in this process here (``hypercorn.asyncio.serve``), as the serve command's one
worker does, so that what its connections do is measured with everything else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import hypercorn.asyncio
import hypercorn.asyncio.run
import pytest
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework
from hypercorn.typing import ASGIReceiveCallable
from hypercorn.typing import ASGISendCallable
from hypercorn.typing import ASGISendEvent
from hypercorn.typing import Scope
from quart import Quart

from flaskr_async import create_app
from flaskr_async.db import current_database
from flaskr_async.middleware.deadlines import CONNECTION_CLASS
from flaskr_async.middleware.deadlines import DeadlineTCPServer
from flaskr_async.middleware.deadlines import SendDeadline
from flaskr_async.middleware.deadlines import deadline_server
from tests.helpers import load_test_data
from tests.servers import TLS
from tests.servers import free_port
from tests.visitors import held_by_server
from tests.visitors import stalled
from tests.visitors import unsent_by_server

PAGE_POSTS = 100  # of 60 KB: a 6 MB page, more than the kernel's socket buffers take


@asynccontextmanager
async def hypercorn_in_process(config: dict[str, Any]) -> AsyncIterator[tuple[Quart, int]]:
    """Serve an app with hypercorn in this process; stop it (as SIGTERM would) after the block."""
    app = create_app({**config, "POSTS_PER_PAGE": PAGE_POSTS})
    port = free_port()
    server_config = Config()
    server_config.bind = [f"127.0.0.1:{port}"]
    server_config.graceful_timeout = 5
    stop = asyncio.Event()
    serving = asyncio.create_task(
        hypercorn.asyncio.serve(app, server_config, shutdown_trigger=stop.wait)
    )
    try:
        async with httpx.AsyncClient(verify=TLS) as client:
            for _ in range(200):
                try:
                    await client.get(f"http://127.0.0.1:{port}/hello")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
        yield app, port
    finally:
        stop.set()
        await asyncio.wait_for(serving, 15)


async def fill_the_index(app: Quart) -> None:
    """Write a page of large posts straight into the database."""
    async with app.app_context():
        await load_test_data(app)
        async with current_database().transaction() as tx:
            for n in range(PAGE_POSTS):
                await tx.execute(
                    "INSERT INTO post (title, body, author_id) VALUES (?, ?, 1)",
                    (f"big {n}", "x" * 60_000),
                )


async def until_released(port: int, client: str, within: float) -> float:
    """Wait until the server holds no socket from ``client``; return the seconds it took."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while held_by_server(port, client):
            await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.sqlite_only  # what is measured is the connection, not the database
async def test_a_stalled_write_costs_the_client_its_connection(
    app_config: dict[str, Any], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = {**app_config, "SEND_TIMEOUT": 1}
    with caplog.at_level(logging.INFO, "flaskr_async"):
        async with hypercorn_in_process(config) as (app, port):
            await fill_the_index(app)
            sockets = [stalled(port, "/", f"127.0.3.{n}") for n in (1, 2)]
            try:
                took = [await until_released(port, f"127.0.3.{n}", within=4) for n in (1, 2)]
                async with httpx.AsyncClient(verify=TLS) as client:
                    hello = await client.get(f"http://127.0.0.1:{port}/hello")
            finally:
                for sock in sockets:
                    sock.close()
    print(f"a 6 MB page never read: connections let go after {max(took):.2f} s (SEND_TIMEOUT 1)")
    assert hello.status_code == 200
    assert max(took) < 3
    # A line each, and no error: a client that stops reading must not flood the error log.
    for n in (1, 2):
        assert f"Ended a response to 127.0.3.{n}: nothing taken for 1.0 s" in caplog.text
    assert [
        record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR
    ] == []


@pytest.mark.sqlite_only
async def test_stopping_is_not_held_by_clients_that_never_read(
    app_config: dict[str, Any], backend: str
) -> None:
    # A write deadline longer than the stop: the stop shortens every pending one.
    config = {**app_config, "SEND_TIMEOUT": 30, "LIVE_POLL_INTERVAL": 0.05}
    sockets: list[socket.socket] = []
    try:
        async with hypercorn_in_process(config) as (app, port):
            await fill_the_index(app)
            sockets = [stalled(port, "/", "127.0.4.1"), stalled(port, "/events", "127.0.4.2")]
            await asyncio.sleep(0.3)  # the page's write has stalled, the stream is open
            assert held_by_server(port, "127.0.4.1") == held_by_server(port, "127.0.4.2") == 1
            stopping = time.monotonic()
        stopped = time.monotonic() - stopping
    finally:
        for sock in sockets:
            sock.close()
    print(f"stopped in {stopped:.2f} s with a stalled page and a silent stream (SEND_TIMEOUT 30)")
    assert stopped < 4


async def test_the_connection_class_is_hypercorns_again_after_serving(
    app_config: dict[str, Any],
) -> None:
    original = getattr(hypercorn.asyncio.run, CONNECTION_CLASS)
    app = create_app(app_config)
    async with app.test_app():
        assert getattr(hypercorn.asyncio.run, CONNECTION_CLASS) is not original
    assert getattr(hypercorn.asyncio.run, CONNECTION_CLASS) is original


@dataclass
class BareServer:
    """hypercorn serving a bare ASGI app in this process, with the deadline's connections."""

    port: int
    connections: type[DeadlineTCPServer]
    stop: asyncio.Event
    serving: asyncio.Task[None]


@asynccontextmanager
async def bare_hypercorn(
    app: ASGIFramework,
    monkeypatch: pytest.MonkeyPatch,
    on_stopping: Callable[[], None] = lambda: None,
    send_buffer: int | None = None,
    **settings: float,
) -> AsyncIterator[BareServer]:
    """Serve ``app`` with a 0.5 s write deadline and hypercorn ``settings``; stop it after.

    ``send_buffer`` (bytes) caps the kernel's send buffer of each connection the server accepts
    (they inherit the listening socket's), so that a test fills it in a few responses.
    """
    connections = deadline_server(0.5, on_stopping)
    monkeypatch.setattr(hypercorn.asyncio.run, CONNECTION_CLASS, connections)
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    if send_buffer is not None:
        with socket.socket() as listener:  # closed if the bind fails; detached, hypercorn's
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            listener.bind(("127.0.0.1", port))
            config.bind = [f"fd://{listener.detach()}"]
    for name, value in settings.items():
        setattr(config, name, value)
    stop = asyncio.Event()
    serving = asyncio.create_task(hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait))
    try:
        await listening(port)
        yield BareServer(port, connections, stop, serving)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 15)


async def respond(send: ASGISendCallable, size: int) -> None:
    """Send a 200 response of ``size`` bytes."""
    start: Any = {"type": "http.response.start", "status": 200, "headers": []}
    await send(start)
    await send({"type": "http.response.body", "body": b"x" * size, "more_body": False})


async def test_a_write_of_hypercorns_own_has_the_deadline_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An app without the app's own deadline: only the connection's can cut the write.
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http":
            await respond(send, 6_000_000)

    stopping: list[bool] = []
    async with bare_hypercorn(app, monkeypatch, lambda: stopping.append(True)) as server:
        sock = stalled(server.port, "/", "127.0.5.1")
        try:
            took = await until_released(server.port, "127.0.5.1", within=3)
        finally:
            sock.close()
    assert took < 2
    assert stopping == [True]


async def test_a_response_written_after_the_stop_began_has_the_deadline_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A response still being made when the stop begins (a slow page, a busy machine) writes
    # after it: to a client that takes nothing, it must not hold the stop for graceful_timeout.
    asked, may_write = asyncio.Event(), asyncio.Event()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http":
            asked.set()
            await may_write.wait()
            await respond(send, 6_000_000)

    async with bare_hypercorn(app, monkeypatch, graceful_timeout=10) as server:
        sock = stalled(server.port, "/", "127.0.5.2")
        try:
            await asyncio.wait_for(asked.wait(), 5)
            stopping = time.monotonic()
            server.stop.set()
            (context,) = server.connections.watched
            await asyncio.wait_for(context.terminated.wait(), 5)
            await asyncio.sleep(0.5)  # four rounds of the sweep (every 0.125 s), none writing
            may_write.set()
            await asyncio.wait_for(server.serving, 15)
            stopped = time.monotonic() - stopping
            # And the sweep ends by itself once the last connection has closed.
            await asyncio.wait_for(asyncio.gather(*server.connections.tasks), 2)
        finally:
            may_write.set()
            sock.close()
    assert stopped < 3


def fill_the_socket(port: int, client: str, answered: Callable[[], int]) -> socket.socket:
    """Ask for small responses, never reading, until the server's socket takes no more."""
    sock = stalled(port, "/", client, requests=0)
    asked, last, unchanged = 0, -1, 0

    def ask() -> int | None:
        nonlocal asked
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        asked += 1
        deadline = time.monotonic() + 5
        while answered() < asked:  # the app has handed its response to hypercorn
            assert time.monotonic() < deadline, "a response was not written"
            time.sleep(0.001)
        return unsent_by_server(port, client)

    while unchanged < 4:  # the kernel's buffers are full: what follows stays in the server's
        queued = ask()
        assert queued is not None, "the connection was closed while filling it"
        unchanged, last = (unchanged + 1 if queued == last else 0), queued
    for _ in range(3):  # 28 KB in all: under the 64 KiB at which a write waits on drain()
        ask()
    return sock


async def test_an_idle_connection_s_unsent_tail_has_the_deadline_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last responses wait in the server's buffer, the connection idles, hypercorn closes
    # it (keep_alive_timeout) and waits for the flush: a client that takes nothing held it.
    answered = 0

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        nonlocal answered
        if scope["type"] == "http":
            await respond(send, 4_000)
            answered += 1

    async with bare_hypercorn(app, monkeypatch, send_buffer=8192, keep_alive_timeout=0.5) as server:
        sock = await asyncio.to_thread(fill_the_socket, server.port, "127.0.5.3", lambda: answered)
        try:
            took = await until_released(server.port, "127.0.5.3", within=5)
        finally:
            sock.close()
    assert took < 3  # the keep-alive timeout, then the deadline


# How a client may leave a connection: what it sent before closing it.
LEAVINGS = {
    "before asking anything": b"",
    "halfway through a request's head": b"GET / HTTP/1.1\r\nHo",
    "after a response, the connection kept alive": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "during a streamed response": b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("sent", LEAVINGS.values(), ids=LEAVINGS)
async def test_a_connection_the_client_closed_is_released_at_once(
    monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    # hypercorn waited for its idle timer (keep_alive_timeout, 5 s) before closing a connection
    # whose client had closed it: a descriptor and a socket in CLOSE_WAIT, per client, for 5 s.
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/stream":
            await respond(send, 10)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a first event", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    async with bare_hypercorn(app, monkeypatch) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=("127.0.5.4", 0)
        )
        writer.write(sent)
        async with asyncio.timeout(5):
            while not server.connections.connected:  # hypercorn serves the connection
                await asyncio.sleep(0.01)
            if sent.endswith(b"\r\n\r\n"):
                await reader.readuntil(b"a first event" if b"/stream" in sent else b"x" * 10)
        writer.close()
        await writer.wait_closed()
        took = await until_released(server.port, "127.0.5.4", within=3)
    assert took < 1  # hypercorn's keep_alive_timeout is 5 s


@pytest.mark.parametrize("answer_after", [None, 0.01], ids=["at once", "after the end is read"])
async def test_a_request_that_came_with_the_client_s_end_is_answered_then_released(
    monkeypatch: pytest.MonkeyPatch, answer_after: float | None
) -> None:
    # The request and the client's end in one read: hypercorn answered, then restarted its
    # idle timer, and closed only at keep_alive_timeout (5 s).
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http":
            if answer_after is not None:  # as a page that reads the database does
                await asyncio.sleep(answer_after)
            await respond(send, 10)

    async with bare_hypercorn(app, monkeypatch) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=("127.0.5.5", 0)
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        writer.write_eof()
        started = time.monotonic()
        async with asyncio.timeout(3):
            answer = await reader.read()  # to the server's end
        took = time.monotonic() - started
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"x" * 10 + b"\r\n0\r\n\r\n")
    assert took < 1  # hypercorn's keep_alive_timeout is 5 s


@pytest.mark.sqlite_only  # what is measured is the connection, not the database
async def test_a_connection_aborted_with_requests_still_queued_ends(
    app_config: dict[str, Any], backend: str
) -> None:
    # Pipelined requests behind a page the client never takes: once the deadline ended it,
    # hypercorn's read waited for ever for that response to finish, so the connection's task
    # (and what it held) stayed until the stop, which it held for graceful_timeout.
    async with hypercorn_in_process({**app_config, "SEND_TIMEOUT": 1}) as (app, port):
        await fill_the_index(app)
        connections: type[DeadlineTCPServer] = getattr(hypercorn.asyncio.run, CONNECTION_CLASS)
        sock = stalled(port, "/", "127.0.5.6", requests=3)
        try:
            await until_released(port, "127.0.5.6", within=4)  # the write deadlines
            async with asyncio.timeout(3):
                while connections.connected:  # the connection's task has ended
                    await asyncio.sleep(0.02)
        finally:
            sock.close()


async def listening(port: int) -> None:
    """Wait until something accepts connections on a loopback port."""
    async with asyncio.timeout(5):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                await asyncio.sleep(0.02)
            else:
                writer.close()
                await writer.wait_closed()
                return


def test_each_app_gets_a_connection_class_of_its_own() -> None:
    one, two = deadline_server(1, lambda: None), deadline_server(2, lambda: None)
    assert (one.deadline, two.deadline) == (1, 2)
    assert one.writing is not two.writing and one.watched is not two.watched


async def test_a_send_that_never_completes_ends_the_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[ASGISendEvent] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"never taken", "more_body": False})

    async def stuck(message: ASGISendEvent) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # HTTP/2 flow control that never opens, say

    scope: Any = {"type": "http", "client": ("192.0.2.1", 1234)}
    with caplog.at_level(logging.INFO, "flaskr_async"):
        async with asyncio.timeout(2):
            await SendDeadline(app, 0.05)(scope, receive_nothing, stuck)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert "Ended a response to 192.0.2.1: nothing taken for 0.05 s" in caplog.text


async def receive_nothing() -> Any:
    """Wait forever, as a client that sends no more would."""
    await asyncio.Event().wait()


async def test_other_scopes_pass_through() -> None:
    seen = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        seen.append(scope["type"])

    scope: Any = {"type": "lifespan"}
    await SendDeadline(app, 1)(scope, receive_nothing, receive_nothing)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2C_UPGRADE = (
    b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("opening", [H2_PREFACE, H2_PREFACE[:16], H2C_UPGRADE])
async def test_http2_without_tls_is_refused(
    app_config: dict[str, Any], backend: str, opening: bytes
) -> None:
    async with hypercorn_in_process(app_config) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(opening)
            if opening == H2_PREFACE[:16]:
                # Not yet known to be HTTP/2: still an unfinished HTTP/1.1 request.
                writer.write(H2_PREFACE[16:])
            async with asyncio.timeout(2):
                answer = await reader.read()  # until the server closes the connection
            # Nothing served: at most hypercorn's 101 to the upgrade, before the close.
            assert answer == b"" or (
                answer.startswith(b"HTTP/1.1 101 ") and answer.count(b"HTTP/") == 1
            )
        finally:
            writer.close()
        # HTTP/1.1 is served as ever.
        async with httpx.AsyncClient(verify=TLS) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/hello")).text == "Hello, World!"
