"""Clients of real servers: a visitor behind a balancer, raw event streams, held sockets."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.helpers import csrf_token_of
from tests.servers import TLS
from tests.servers import Server
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env

WAIT = 15.0  # seconds a stream waits for what it expects
ESTABLISHED, CLOSE_WAIT = "01", "08"  # /proc/net/tcp states of a socket still held open

HOSTS = ("127.0.0.1", "127.0.0.2")  # two "hosts": two loopback addresses, two processes


class Visitor:
    """One user behind a load balancer: the same session cookie goes to whichever host.

    ``device``: the login throttle's known-browser cookie, kept too when ``keep_device``.
    """

    def __init__(
        self, user_agent: str = "Visitor/1.0", keep_device: bool = False, address: str = ""
    ) -> None:
        # No cookie jar: cookies are per host name, and a balancer hides the hosts.
        # ``address``: the loopback address it connects from ("": the system's choice), so
        # that tests sharing servers are each their own client to the per-address limits.
        transport = httpx.HTTPTransport(verify=TLS, local_address=address or None)
        self.client = httpx.Client(
            timeout=10, transport=transport, headers={"User-Agent": user_agent}
        )
        self.session = ""
        self.device = ""
        self.keep_device = keep_device

    def request(self, method: str, url: str, form: dict[str, str] | None = None) -> httpx.Response:
        """Send the session cookie; keep the one the server sets."""
        cookie = f"session={self.session}"
        if self.device:
            cookie += f"; flaskr_device={self.device}"
        response = self.client.request(method, url, data=form, headers={"Cookie": cookie})
        for header in response.headers.get_list("set-cookie"):
            if match := re.match(r"session=([^;]*)", header):
                self.session = match.group(1)
            if self.keep_device and (match := re.match(r"flaskr_device=([^;]*)", header)):
                self.device = match.group(1)
        return response

    def submit(
        self, page_url: str, form: dict[str, str], action: str | None = None
    ) -> httpx.Response:
        """Load a form page, then post the form with its CSRF token."""
        page = self.request("GET", page_url)
        return self.request(
            "POST", action or page_url, {**form, "csrf_token": csrf_token_of(page.text)}
        )

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


@contextmanager
def two_hosts(database: str | Path) -> Iterator[tuple[Server, Server]]:
    """Serve the same app from two processes on two addresses, sharing one database."""
    with ExitStack() as stack:
        servers = []
        # Each host serves its own address as Host, as behind a balancer that probes addresses.
        env = server_env(database, TRUSTED_HOSTS=json.dumps(HOSTS))
        for host in HOSTS:
            port = free_port()
            command = hypercorn_command(port, host=host)
            servers.append(stack.enter_context(running(command, env, port, host)))
        yield servers[0], servers[1]


def register_and_log_in(visitor: Visitor, a: Server, b: Server) -> None:
    """Register on host A and log in on host B."""
    credentials = {"username": "alice", "password": "correct horse"}
    assert visitor.submit(a.url + "/auth/register", credentials).status_code == 302
    assert visitor.submit(b.url + "/auth/login", credentials).headers["location"] == "/"


class RawStream:
    """One EventSource-like connection over a plain socket (cheap enough for hundreds)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = b""

    @classmethod
    async def open(cls, url: str, client: str | None = None) -> RawStream:
        """Connect (from the address ``client``) and ask for the stream; wait for its retry."""
        parts = urlsplit(url)
        local = (client, 0) if client else None
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, local_addr=local)
        writer.write(
            f"GET /events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        stream = cls(reader, writer)
        await stream.until(b"retry: ")
        assert stream.received.startswith(b"HTTP/1.1 200")
        return stream

    async def until(self, text: bytes) -> None:
        """Read until ``text`` has arrived."""
        async with asyncio.timeout(WAIT):
            while text not in self.received:
                chunk = await self.reader.read(65536)
                assert chunk, f"the stream ended before {text!r}"
                self.received += chunk

    async def until_created(self, count: int) -> None:
        """Read until ``count`` created events have arrived."""
        async with asyncio.timeout(WAIT):
            while self.received.count(b"event: created") < count:
                chunk = await self.reader.read(65536)
                assert chunk, "the stream ended early"
                self.received += chunk

    def created_ids(self) -> list[int]:
        """Return the post ids of the created events received, in order."""
        return [int(n) for n in re.findall(rb'event: created\ndata: {"id": (\d+)}', self.received)]

    async def ended(self) -> float:
        """Read until the server closes the connection; return when (monotonic)."""
        async with asyncio.timeout(WAIT):
            while chunk := await self.reader.read(65536):
                self.received += chunk
        return time.monotonic()

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()


def loopback_client(n: int) -> str:
    """Return the n-th loopback address, a client of its own (each has a share of streams)."""
    return f"127.0.{2 + n // 250}.{2 + n % 250}"


def stalled(port: int, path: str, client: str, requests: int = 1) -> socket.socket:
    """Ask ``requests`` times at once for a path from ``client`` (least buffer), read nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.bind((client, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() * requests)
    return sock


def server_sockets(port: int) -> Iterator[tuple[str, str, int]]:
    """Yield the server's sockets on ``port``: client address, state, bytes unsent (/proc)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        if int(local.split(":")[1], 16) == port:
            address = socket.inet_ntoa(bytes.fromhex(remote.split(":")[0])[::-1])
            yield address, state, int(queues.split(":")[0], 16)


def held_by_server(port: int, client: str | None = None) -> int:
    """Count the server's sockets on ``port`` still open (from ``client``, if given)."""
    return sum(
        client is None or address == client
        for address, state, _ in server_sockets(port)
        if state in (ESTABLISHED, CLOSE_WAIT)
    )


def unsent_by_server(port: int, client: str) -> int | None:
    """Return the bytes the server's socket to ``client`` holds unsent (None: no socket)."""
    return next((unsent for address, _, unsent in server_sockets(port) if address == client), None)
