"""What one client can make a real server hold, bounded in bytes, time and share.

The kind: a client that never reads, or reads a byte a second, a large response or a stream;
many streams from one client; a reconnect storm; SIGTERM while such clients hold on. Each is
tried through the serve command (one and two workers) and plain hypercorn; SIGTERM on both
backends, the rest (the connection's and the broadcaster's, not the database's) on SQLite.
"""

from __future__ import annotations

import asyncio
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import closing
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.servers import ROOT
from tests.servers import TLS
from tests.servers import Server
from tests.servers import backend_of
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import server_env
from tests.servers import start
from tests.servers import wait_until_serving
from tests.visitors import RawStream
from tests.visitors import Visitor
from tests.visitors import held_by_server
from tests.visitors import loopback_client
from tests.visitors import register_and_log_in
from tests.visitors import stalled

SEND_TIMEOUT = 1  # seconds, the smallest allowed: a stalled write is cut after this
PER_CLIENT = 3
# hypercorn's graceful_timeout in these servers: well above the second or two a stop takes,
# even on a machine busy with three suites (5.3 s seen), so that the SIGTERM test tells a stop
# that ended its streams from one that waited the graceful timeout out.
GRACEFUL = 15
BIG_BODY = "x" * 60_000  # a post near the 64 KiB limit
# An index page of 6 MB: more than the kernel's socket buffers take (tcp_wmem's 4 MiB at most),
# so a client that does not read stalls the server's write itself.
BIG_PAGE = 100
SERVERS = ["serve, 1 worker", "serve, 2 workers", "plain hypercorn"]


def server_command(kind: str, port: int, tmp_path: Path) -> list[str]:
    """Return the command that starts one kind of server on a port."""
    if kind == "plain hypercorn":
        return hypercorn_command(port, "--graceful-timeout", str(GRACEFUL))
    config = tmp_path / "hypercorn.toml"
    workers = 2 if kind == "serve, 2 workers" else 1
    config.write_text(
        f'bind = ["127.0.0.1:{port}"]\nworkers = {workers}\ngraceful_timeout = {GRACEFUL}\n'
        'worker_class = "uvloop"\n'
    )
    return [sys.executable, "-m", "flaskr_async", "serve", "--config", str(config)]


@dataclass
class Site:
    """A server under test and how many workers it runs."""

    server: Server
    workers: int

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return self.server.url

    @property
    def port(self) -> int:
        """Return the server's port."""
        port = urlsplit(self.server.url).port
        assert port is not None
        return port


@contextmanager
def serving(kind: str, database: str, folder: Path) -> Iterator[Site]:
    """Serve the app with small bounds on a database, through one kind of server."""
    port = free_port()
    env = server_env(
        database,
        SEND_TIMEOUT=str(SEND_TIMEOUT),
        LIVE_STREAMS_PER_CLIENT=str(PER_CLIENT),
        LIVE_QUEUE_SIZE="8",
        LIVE_HISTORY="50",
        LIVE_KEEPALIVE_INTERVAL="1",
        POSTS_PER_PAGE=str(BIG_PAGE),
    )
    server = start(server_command(kind, port, folder), env, port)
    try:
        wait_until_serving(server)
        yield Site(server, 2 if kind == "serve, 2 workers" else 1)
    finally:
        server.kill()
        if server.process.stdout is not None:
            server.process.stdout.close()


@pytest.fixture(params=SERVERS)
def site(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Site]:
    """Serve on a fresh database of the backend under test, for a test that stops the server."""
    with serving(request.param, database_url, tmp_path) as site:
        yield site


@pytest.fixture(scope="module", params=SERVERS)
def shared_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """Serve on a SQLite database whose index is a 6 MB page, shared by the tests of one kind.

    Each test is its own clients (loopback addresses no other test uses), and leaves the
    server as it found it: every stream and connection closed, and nothing the others read
    changed (the catch-up test's posts are small beside the big page, and the only events).
    Starting a server of each kind for each of them cost some 8 s of CPU a run.
    """
    folder = tmp_path_factory.mktemp("stream-limits")
    database = str(folder / "flaskr.sqlite")
    with serving(request.param, database, folder) as site:
        fill_a_sqlite_index(database)
        yield site


async def try_stream(site: Site, client: str) -> RawStream | None:
    """Ask for a stream from ``client``: the open stream, or None (and closed) if refused."""
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port, local_addr=(client, 0))
    writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 5)
    if not status.startswith(b"HTTP/1.1 200"):
        assert status.startswith(b"HTTP/1.1 503"), status
        writer.close()
        return None
    stream = RawStream(reader, writer)
    await stream.until(b"retry: ")
    return stream


async def released(port: int, client: str, within: float) -> float:
    """Wait until the server holds no socket from ``client``; return how long that took."""
    started = time.monotonic()
    while held_by_server(port, client):
        assert time.monotonic() - started < within, f"{client} still held after {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


BIG_AUTHOR = "INSERT INTO \"user\" (username, password) VALUES ('big', 'x') RETURNING id"
BIG_POST = "INSERT INTO post (title, body, author_id) VALUES ($1, $2, $3)"


def big_posts(author: int) -> list[tuple[str, str, int]]:
    """Return the rows of posts of 60 KB that make the index page 6 MB."""
    return [(f"big {n}", BIG_BODY, author) for n in range(BIG_PAGE)]


async def fill_the_index(site: Site, database: str) -> None:
    """Write posts of 60 KB straight into the database until the index page is 6 MB."""
    if backend_of(database) == "postgresql":
        connection = await asyncpg.connect(database)
        try:
            await connection.executemany(BIG_POST, big_posts(await connection.fetchval(BIG_AUTHOR)))
        finally:
            await connection.close()
        return
    fill_a_sqlite_index(database)


def fill_a_sqlite_index(database: str) -> None:
    """Write the big posts of fill_the_index into a SQLite file."""
    with closing(sqlite3.connect(database)) as connection, connection:
        author = connection.execute(BIG_AUTHOR).fetchone()[0]
        connection.executemany(BIG_POST.replace("$1, $2, $3", "?, ?, ?"), big_posts(author))


# On SQLite only: the connection is what is measured, not the database.
@pytest.mark.parametrize("reading", ["never", "a byte a second"])
async def test_a_client_that_does_not_take_a_large_page_loses_its_connection(
    shared_site: Site, reading: str
) -> None:
    site = shared_site
    client = loopback_client(7 if reading == "never" else 8)
    sock = stalled(site.port, "/", client)
    try:
        trickle = asyncio.create_task(read_slowly(sock)) if reading != "never" else None
        # Held while the page is written, then cut: no longer than the write deadline allows.
        took = await released(site.port, client, within=SEND_TIMEOUT + 4)
        if trickle is not None:
            trickle.cancel()
        print(f"{reading}: the server let go of the connection after {took:.2f} s")
        assert httpx.get(site.url + "/hello", verify=TLS).status_code == 200
    finally:
        sock.close()


async def read_slowly(sock: socket.socket) -> None:
    """Read one byte a second."""
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    while await loop.sock_recv(sock, 1):
        await asyncio.sleep(1)


# On SQLite only: the share and the bound are the broadcaster's, on any backend.
async def test_one_client_cannot_take_every_stream(shared_site: Site) -> None:
    site = shared_site
    hog, other = loopback_client(1), loopback_client(2)
    share = PER_CLIENT * site.workers  # the share is each worker's
    opened: list[RawStream] = []
    try:
        refused = 0
        # Rounds of streams that are never read, as a client that stops reading would leave.
        for _ in range(4):
            for _ in range(PER_CLIENT + 2):
                stream = await try_stream(site, hog)
                if stream is None:
                    refused += 1
                else:
                    opened.append(stream)
        assert len(opened) <= share, (len(opened), refused)
        assert refused >= 4 * (PER_CLIENT + 2) - share
        await released_but(site, hog, len(opened))
        # Everyone else is served: a stream of their own and every page.
        theirs = await try_stream(site, other)
        assert theirs is not None
        opened.append(theirs)
        for path in ("/", "/hello", "/auth/login"):
            assert httpx.get(site.url + path, verify=TLS).status_code == 200
    finally:
        for stream in opened:
            stream.close()
    # Each slot is free again once its connection ends.
    await released(site.port, hog, within=5)
    again = [await try_stream(site, hog) for _ in range(PER_CLIENT)]
    for stream in again:
        assert stream is not None
        stream.close()


async def released_but(site: Site, client: str, count: int) -> None:
    """Wait until the server holds no more than ``count`` sockets from ``client``.

    A refused request's connection ends as soon as the client closes it: not at hypercorn's
    keep-alive timeout (5 s), as it did before the app's connection class saw to it.
    """
    try:
        async with asyncio.timeout(2):
            while held_by_server(site.port, client) > count:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{held_by_server(site.port, client)} held, not {count}") from None


async def test_a_reconnect_storm_leaves_every_slot_free(shared_site: Site) -> None:
    site = shared_site
    clients = [loopback_client(n) for n in range(10, 14)]

    async def reconnect(client: str) -> None:
        for _ in range(25):
            stream = await try_stream(site, client)
            if stream is not None:
                stream.close()

    await asyncio.gather(*(reconnect(client) for client in clients))
    for client in clients:
        await released(site.port, client, within=5)
        streams = [await try_stream(site, client) for _ in range(PER_CLIENT)]
        for stream in streams:
            assert stream is not None
            stream.close()


async def test_a_catch_up_is_bounded_in_bytes(shared_site: Site) -> None:
    site = shared_site
    visitor = Visitor(address=loopback_client(40))
    try:
        await asyncio.to_thread(register_and_log_in, visitor, site.server, site.server)
        for n in range(12):
            await asyncio.to_thread(
                visitor.submit, site.url + "/create", {"title": f"{n}", "body": "\u00e9" * 30_000}
            )
    finally:
        visitor.close()
    await asyncio.sleep(0.5)  # ten change checks: every worker has read the twelve events
    # Twelve events behind, with room for eight: a reload, not the catch-up.
    with httpx.stream("GET", site.url + "/events?since=0", timeout=5, verify=TLS) as response:
        first = next(response.iter_raw())
    assert b"event: reload" in first and b"event: created" not in first
    assert len(first) < 200


async def test_sigterm_with_clients_that_never_read(site: Site, database_url: str) -> None:
    await fill_the_index(site, database_url)
    with ExitStack() as stack:
        for n in range(3):
            stack.callback(stalled(site.port, "/", loopback_client(20 + n)).close)
            stream = await try_stream(site, loopback_client(30 + n))
            assert stream is not None
            stack.callback(stream.close)
        await asyncio.sleep(0.5)  # the page writes have stalled
        stopping = time.monotonic()
        site.server.process.send_signal(15)
        status = await asyncio.to_thread(site.server.process.wait, GRACEFUL + 5)
        stopped = time.monotonic() - stopping
    output = site.server.output()
    print(f"SIGTERM with 6 clients that never read: exited in {stopped:.2f} s")
    assert status == 0
    assert stopped < GRACEFUL
    assert output.count("Database closed") == output.count("Database opened") >= 1


@contextmanager
def few_descriptors(tmp_path: Path, limit: int, **settings: str) -> Iterator[Site]:
    """Serve with one worker whose open-file limit (soft and hard) is ``limit``."""
    port = free_port()
    env = server_env(tmp_path / "flaskr.sqlite", **settings)
    command = server_command("serve, 1 worker", port, tmp_path)

    def lower_the_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lower_the_limit,  # the child sets its own limit only
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        wait_until_serving(server)
        assert httpx.get(server.url + "/hello", verify=TLS).status_code == 200
        yield Site(server, 1)
    finally:
        server.stop()


CLAMPED = re.compile(
    r"Live index: LIVE_MAX_STREAMS = 1000 does not fit the open-file limit \((\d+), (\d+) of"
    r" them in use at start-up\): at most (\d+) streams(?:, and LIVE_STREAMS_PER_CLIENT ="
    r" (\d+) cut to (\d+) so that no client holds them all)?; raise the limit"
)


def clamped(output: str) -> tuple[int, int, int, int | None]:
    """Read the limit, the files in use, the streams and the share cut (if any) from the log."""
    found = CLAMPED.search(output)
    assert found is not None, output
    limit, in_use, streams, _, share = found.groups()
    return int(limit), int(in_use), int(streams), None if share is None else int(share)


def test_a_worker_with_few_descriptors_clamps_its_streams(tmp_path: Path) -> None:
    with few_descriptors(tmp_path, 256) as site:
        pass
    limit, in_use, streams, share = clamped(site.server.output())
    assert limit == 256 and 0 < in_use < 64 and streams == (256 - in_use) // 2
    assert share is None  # 8, well below


async def test_a_share_cut_with_the_streams_still_leaves_others_a_stream(tmp_path: Path) -> None:
    """Attack 26: ulimit -n 40 cut the streams to 20, and one client with a share of 20 held all.

    With every stream it may have held by one client and one by another, the worker still
    answers a request: half of the files not in use at start-up stayed for that.
    """
    with few_descriptors(tmp_path, 64, LIVE_STREAMS_PER_CLIENT="40") as site:
        with ExitStack() as stack:
            held = 0
            while (stream := await try_stream(site, loopback_client(1))) is not None:
                stack.callback(stream.close)
                held += 1
            other = await try_stream(site, loopback_client(2))
            assert other is not None
            stack.callback(other.close)
            hello = await asyncio.to_thread(httpx.get, site.url + "/hello", verify=TLS)
            assert hello.status_code == 200
    limit, in_use, streams, share = clamped(site.server.output())
    print(f"limit {limit}, {in_use} files in use at start-up: {streams} streams, share {share}")
    assert share == held == streams - 1
