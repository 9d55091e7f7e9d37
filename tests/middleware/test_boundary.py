"""The boundary: malformed requests and foreign hosts get a 4xx and a close, never a 5xx."""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import event
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from markupsafe import escape
from quart import Quart
from werkzeug.datastructures import Headers

from flaskr_async.middleware.boundary import host_problem
from flaskr_async.middleware.boundary import refuse
from flaskr_async.middleware.boundary import trusted_names
from flaskr_async.middleware.refusals import FIRST_LINES
from flaskr_async.middleware.refusals import LOG_INTERVAL
from flaskr_async.middleware.refusals import TRACKED
from flaskr_async.middleware.refusals import RefusalLog
from flaskr_async.middleware.security import SECURITY_HEADERS
from flaskr_async.settings import DEFAULTS
from tests.helpers import serving
from tests.servers import TLS
from tests.servers import Server
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env

os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "flaskr-async-hypothesis")
)

KEEP_ALIVE = 2  # seconds; hypercorn's default is 5, lowered to keep the tests short
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")


class Watched:
    """A running server whose output a thread collects as it arrives."""

    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.port = port
        self.chunks: list[bytes] = []
        assert server.process.stdout is not None
        stdout = server.process.stdout
        self.reader = threading.Thread(target=self.collect, args=(stdout,), daemon=True)
        self.reader.start()

    def collect(self, stdout: Any) -> None:
        """Keep the pipe drained, so a chatty server never blocks on it."""
        for line in iter(stdout.readline, b""):
            self.chunks.append(line)

    def output(self) -> str:
        """Return what the server has written so far."""
        return b"".join(self.chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    """Serve the default settings with hypercorn on loopback, for the whole module."""
    port = free_port()
    env = server_env(tmp_path_factory.mktemp("boundary") / "flaskr.sqlite")
    command = hypercorn_command(port, "--keep-alive", str(KEEP_ALIVE))
    with running(command, env, port) as served:
        yield Watched(served, port)


def exchange(port: int, request: bytes, linger: float | None = 0.5) -> tuple[int | None, bool]:
    """Send raw bytes; return the status answered and whether the server closed within linger."""
    status = None
    with socket.create_connection(("127.0.0.1", port), timeout=KEEP_ALIVE + 3) as sock:
        sock.sendall(request)
        reply = b""
        try:
            while b"\r\n\r\n" not in reply and (chunk := sock.recv(65536)):
                reply += chunk
            status = int(match[1]) if (match := STATUS.match(reply)) else None
            if linger is None:
                return status, False
            # The body of a kept-alive answer is short; what follows is the close, if any.
            sock.settimeout(linger)
            while sock.recv(65536):
                pass
        except TimeoutError:
            return status, False
        except ConnectionResetError:
            status = int(match[1]) if (match := STATUS.match(reply)) else None
    return status, True


def request(target: bytes = b"/hello", *headers: bytes, version: bytes = b"1.1") -> bytes:
    """Return a request head: a request line and header lines."""
    lines = [b"GET " + target + b" HTTP/" + version, *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


HOST = b"Host: 127.0.0.1"
WEBSOCKET = (
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
)

# (what, raw request, status). Every refusal also closes the connection.
ODDITIES = [
    ("empty path", request(b"?x", HOST), 400),
    ("asterisk", request(b"*", HOST), 400),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    ("HEAD, empty path", b"HEAD ?x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    ("absolute-form", request(b"http://127.0.0.1/hello", HOST), 400),
    ("absolute-form, foreign", request(b"http://evil.example/hello", HOST), 400),
    ("authority-form", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    ("NUL", request(b"/hel\x00lo", HOST), 400),
    ("DEL", request(b"/hel\x7flo", HOST), 400),
    ("non-ASCII byte", request(b"/\xff", HOST), 400),
    ("invalid escape", request(b"/%zz", HOST), 400),
    ("truncated escape", request(b"/hello%2", HOST), 400),
    ("escaped NUL", request(b"/%00", HOST), 400),
    ("escaped CR LF", request(b"/%0d%0aSet-Cookie:%20x=1", HOST), 400),
    ("escaped NUL in a real route", request(b"/hello%00", HOST), 400),
    ("escaped C1 CSI (UTF-8)", request(b"/hello%c2%9b", HOST), 400),
    ("overlong target", request(b"/" + b"a" * 70_000, HOST), 431),
    ("overlong header", request(b"/hello", HOST, b"X-A: " + b"a" * 70_000), 431),
    ("duplicate Host", request(b"/hello", HOST, HOST), 400),
    ("missing Host, HTTP/1.1", request(b"/hello"), 400),
    ("missing Host, HTTP/1.0", request(b"/hello", version=b"1.0"), 400),
    ("empty Host", request(b"/hello", b"Host: "), 400),
    ("foreign Host", request(b"/hello", b"Host: evil.example"), 400),
    ("trusted name as a prefix", request(b"/hello", b"Host: localhost.evil.example"), 400),
    ("trusted name with port as a prefix", request(b"/", b"Host: localhost:8000.evil"), 400),
    ("malformed Host", request(b"/hello", b"Host: local_host"), 400),
    ("Host with user info", request(b"/hello", b"Host: evil@127.0.0.1"), 400),
    ("Host port out of range", request(b"/hello", b"Host: 127.0.0.1:65536"), 400),
    ("foreign IPv6 literal", request(b"/hello", b"Host: [::2]"), 400),
    ("Host with port", request(b"/hello", b"Host: 127.0.0.1:8000"), 200),
    ("IPv6 literal", request(b"/hello", b"Host: [::1]:8000"), 200),
    ("upper-case host", request(b"/hello", b"Host: LOCALHOST"), 200),
    ("HTTP/1.0 with Host", request(b"/hello", HOST, version=b"1.0"), 200),
    (
        "Content-Length and Transfer-Encoding",
        b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        # RFC 9112 6.1 says 501 for a coding the server does not know: h11 answers and closes.
        "unknown Transfer-Encoding",
        b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    ("WebSocket handshake", request(b"/hello", HOST, *WEBSOCKET), 403),
    ("WebSocket handshake, empty path", request(b"?x", HOST, *WEBSOCKET), 403),
]


@pytest.mark.system
@pytest.mark.parametrize(
    ("raw", "status"), [case[1:] for case in ODDITIES], ids=[case[0] for case in ODDITIES]
)
def test_request_oddities(server: Watched, raw: bytes, status: int) -> None:
    answered, closed = exchange(server.port, raw)
    assert answered == status
    # A refusal closes at once; a served request keeps its connection for the next one,
    # except over HTTP/1.0 (h11 has no 1.0 keep-alive).
    assert closed == (status != 200 or b" HTTP/1.0\r\n" in raw)
    assert "Traceback" not in server.output()


@pytest.mark.system
def test_a_request_smuggled_behind_ambiguous_framing_is_never_read(server: Watched) -> None:
    """Content-Length and Transfer-Encoding together: one 400, then the connection closes."""
    smuggled = request(b"/hello", HOST)
    head = b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    raw = head + b"Content-Length: %d\r\n\r\n0\r\n\r\n" % (5 + len(smuggled)) + smuggled
    with socket.create_connection(("127.0.0.1", server.port), timeout=KEEP_ALIVE + 3) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ") and reply.count(b"HTTP/1.1 ") == 1


@pytest.mark.system
def test_refusals_are_short_pages_with_the_security_headers(server: Watched) -> None:
    response = httpx.get(
        f"http://127.0.0.1:{server.port}/hello",
        headers={"Host": "evil.example"},
        timeout=5,
        verify=TLS,
    )
    assert response.status_code == 400
    assert "<h1>400 Bad Request</h1>" in response.text  # the app's own error page
    said = (
        'The request was refused: the Host "evil.example" is not one this site serves. If'
        " it should be, add it to the TRUSTED_HOSTS setting (FLASKR_TRUSTED_HOSTS;"
        " docs/deployment.md)."
    )
    assert str(escape(said)) in response.text
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


@pytest.mark.system
def test_http2_without_tls_is_refused_and_http1_goes_on(server: Watched) -> None:
    """hypercorn serves HTTP/1.1 alone (middleware/deadlines.py): h2c closes the connection."""
    with httpx.Client(http1=False, http2=True, timeout=5, verify=TLS) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"http://127.0.0.1:{server.port}/hello")
    assert httpx.get(f"http://127.0.0.1:{server.port}/hello", verify=TLS).status_code == 200


async def test_an_http2_refusal_goes_without_a_connection_header() -> None:
    """HTTP/2 forbids Connection (RFC 9113 8.2.2): a refusal over it (TLS) leaves it out."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await refuse("2", b"refused", send)
    start = sent[0]
    assert start["status"] == 400
    assert b"connection" not in {name for name, _ in start["headers"]}


@pytest.mark.system
def test_foreign_host_sockets_are_all_closed(server: Watched) -> None:
    """Thirty clients send one foreign-Host request each and then sit idle."""
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(30)]
    sent = time.monotonic()
    try:
        for sock in sockets:
            sock.sendall(request(b"/hello", b"Host: evil.example"))
        times = []
        for sock in sockets:
            sock.settimeout(max(0.01, sent + KEEP_ALIVE + 1 - time.monotonic()))
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            times.append(time.monotonic() - sent)
    finally:
        for sock in sockets:
            sock.close()
    # recv raises TimeoutError (failing the test) for a socket still open past the deadline.
    print(f"30 foreign-Host sockets closed by the server, the last after {max(times):.3f} s")
    assert len(times) == 30 and max(times) < KEEP_ALIVE


@pytest.mark.system
def test_hypercorn_server_names_leaks_the_connection(tmp_path: Path) -> None:
    """Why the app checks Host itself: hypercorn 0.18's own check never closes (or times out)."""
    port = free_port()
    options = ("--keep-alive", "1", "--server-name", f"127.0.0.1:{port}")
    with running(hypercorn_command(port, *options), server_env(tmp_path / "f.sqlite"), port):
        status, closed = exchange(port, request(b"/hello", b"Host: evil.example"), linger=2)
    assert (status, closed) == (404, False)


def mostly(usual: list[bytes], odd: list[bytes]) -> st.SearchStrategy[bytes]:
    """Draw mostly from the usual choices, so that most requests get past the parser."""
    return st.sampled_from(usual * 5 + odd)


# Each part is usually one the parser takes, now and then one it refuses, so that most heads
# reach the app with something odd in them and some test the server's own refusals.
ROUTES = [b"/", b"/hello", b"/auth/login", b"/auth/register", b"/create", b"/1/update", b"/static/"]
PIECES = [b"/", b"a", b".", b"..", b"?", b"&", b"=", b"#", b"%", b"%00", b"%zz", b"%2", b"%ff"]
PIECES += [b"%2f", b"%0a", b"%D9%A1", b"%25", b"1", b"-1", b"9" * 30, b"*", b":", b"@", b";"]
PIECES += [b"\\", b"[", b"~", b"'", b'"', b"<", b"{", b"|", b"style.css"]
ROUTED = st.tuples(
    mostly(ROUTES, [b"", b"*", b"//evil.example", b"http://evil.example/x", b"a"]),
    st.lists(mostly(PIECES, [b"\x00", b"\x7f", b"\xff", b" "]), max_size=6),
).map(lambda parts: parts[0] + b"".join(parts[1]))
# One in ten is any bytes at all (one_of would merge repeated branches, so draw a number).
TARGETS = st.integers(0, 9).flatmap(lambda n: st.binary(max_size=30) if n == 0 else ROUTED)
METHODS = mostly([b"GET", b"HEAD", b"POST", b"OPTIONS", b"PUT"], [b"G\x00T", b"GET\t"])
VERSIONS = mostly([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/2.0", b"HTTP/1.1x", b""])
HOSTS = [b"127.0.0.1", b"localhost:1", b"[::1]", b"LOCALHOST", b"evil.example", b"", b"a b"]
HOSTS += [b"\xff", b"[::1", b"127.0.0.1:0", b"127.0.0.1.", b"localhost, evil"]
NAMES = [b"Content-Length", b"Content-Type", b"Connection", b"Expect", b"Cookie", b"Upgrade"]
NAMES += [b"X-Forwarded-Host", b"X-Forwarded-For", b"Transfer-Encoding", b"host", b"Range"]
VALUES = [b"0", b"5", b"-1", b"chunked", b"close", b"100-continue", b"websocket", b"session=x"]
VALUES += [b"application/x-www-form-urlencoded", b"\xff", b"9" * 30, b"", b"bytes=0-0,-1"]
HEADERS = st.tuples(
    # Mostly one Host the app serves, now and then another, none, or a malformed one.
    mostly([b"127.0.0.1"] * 3, HOSTS + [b"none"]).map(
        lambda host: [] if host == b"none" else [(b"Host", host)]
    ),
    st.lists(
        st.tuples(mostly(NAMES, [b"X-\x00", b"A B"]), mostly(VALUES, [b"a\x00b"])), max_size=3
    ),
).map(lambda parts: parts[0] + parts[1])


def raw_request(method: bytes, target: bytes, version: bytes, headers: list[Any]) -> bytes:
    """Assemble a request head from its parts, however malformed."""
    lines = [b" ".join(part for part in (method, target, version) if part)]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.system
@settings(max_examples=150, deadline=None, database=None)
@given(method=METHODS, target=TARGETS, version=VERSIONS, headers=HEADERS)
@example(  # found by the fuzz: chunked twice
    method=b"GET",
    target=b"/",
    version=b"HTTP/1.1",
    headers=[(b"Host", b"127.0.0.1"), *[(b"Transfer-Encoding", b"chunked")] * 2],
)
def test_fuzzed_request_heads_never_get_a_5xx(
    server: Watched, method: bytes, target: bytes, version: bytes, headers: list[Any]
) -> None:
    status, _ = exchange(server.port, raw_request(method, target, version, headers), linger=None)
    event(f"status {status}")
    # None: the server closed without a word or still waits for a body (its timeouts run).
    # h11 answers a transfer coding it does not implement with 501 (RFC 9110 15.6.2), as it
    # does chunked applied twice, which no sender may do (RFC 9112 6.1): only chunked, once.
    codings = [value for name, value in headers if name.lower() == b"transfer-encoding"]
    assert status is None or status < 500 or (status == 501 and codings != [b"chunked"])
    assert "Traceback" not in server.output()


async def test_websockets_are_refused_in_process(tmp_path: Path) -> None:
    # Through the ASGI interface itself: Quart 0.22's test client raises on the close, 0.23's
    # waits for ever.
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/hello",
        "raw_path": b"/hello",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with serving(app_settings(tmp_path)) as app:
        await app(scope, receive, send)  # type: ignore[arg-type]
    assert [(message["type"], message.get("code")) for message in sent] == [
        ("websocket.close", 1008)
    ]


def app_settings(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    """Return test settings on a SQLite file, with overrides."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test",
        "DATABASE": str(tmp_path / "flaskr.sqlite"),
        **settings,
    }


@pytest.fixture
async def hosts_app(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Quart]:
    """Serve an app with the TRUSTED_HOSTS (and proxy hops) of the test's parameters."""
    trusted, hops = request.param
    settings = app_settings(tmp_path, TRUSTED_HOSTS=trusted, PROXY_FIX_TRUSTED_HOPS=hops)
    async with serving(settings) as app:
        yield app


DEFAULT = DEFAULTS["TRUSTED_HOSTS"]
# (TRUSTED_HOSTS, Host header, status)
HOST_TABLE = [
    (DEFAULT, "localhost", 200),
    (DEFAULT, "localhost:5000", 200),
    (DEFAULT, "127.0.0.1:8000", 200),
    (DEFAULT, "[::1]", 200),
    (DEFAULT, "[::1]:8000", 200),
    (DEFAULT, "LocalHost", 200),
    (DEFAULT, "example.org", 400),
    (DEFAULT, "localhost.example.org", 400),
    (DEFAULT, "localhost:0", 400),
    (DEFAULT, "localhost:99999", 400),
    (DEFAULT, "[::2]", 400),
    (DEFAULT, "local host", 400),
    (DEFAULT, "", 400),
    (["example.org"], "example.org", 200),
    (["example.org"], "www.example.org", 400),
    (["example.org"], "localhost", 400),
    ([".example.org"], "example.org", 200),
    ([".example.org"], "www.example.org:443", 200),
    ([".example.org"], "wwwexample.org", 400),
    ([".example.org"], "example.org.evil", 400),
    (["Example.ORG"], "example.org", 200),
    (None, "any.example", 200),
    (None, "my_app:8000", 200),  # a container's name: browsers and curl send "_"
    (["my_app"], "MY_APP", 200),
    (None, "bad host", 400),  # malformed even with no allow-list
]


@pytest.mark.parametrize(
    ("hosts_app", "host", "status"),
    [((trusted, 0), host, status) for trusted, host, status in HOST_TABLE],
    indirect=["hosts_app"],
)
async def test_trusted_hosts(hosts_app: Quart, host: str, status: int) -> None:
    response = await hosts_app.test_client().get("/hello", headers={"Host": host})
    assert response.status_code == status
    assert ("Connection" in response.headers) == (status == 400)


@pytest.mark.parametrize("hosts_app", [(DEFAULT, 0)], indirect=True)
async def test_other_refusals_in_process(hosts_app: Quart) -> None:
    client = hosts_app.test_client()
    framing = {"Content-Length": "5", "Transfer-Encoding": "chunked"}
    assert (await client.post("/auth/login", headers=framing, data=b"x")).status_code == 400
    twice = Headers([("Host", "localhost"), ("Host", "localhost")])
    assert (await client.get("/hello", headers=twice)).status_code == 400
    response = await client.get("/hello", headers={"Host": "evil"}, http_version="2")
    assert response.status_code == 400 and "Connection" not in response.headers
    for target in ("*", "/%zz", "/%00", "/a\x7f"):
        assert (await client.get(target)).status_code == 400, target


@pytest.mark.parametrize(
    ("hosts_app", "forwarded", "status"),
    [
        ((["example.org"], 1), "example.org", 200),  # the Host the app uses is the proxy's
        ((["example.org"], 1), "evil.example", 400),
        ((DEFAULT, 1), "example.org", 400),
        ((DEFAULT, 0), "example.org", 200),  # no trusted proxy: the header means nothing
    ],
    indirect=["hosts_app"],
)
async def test_the_host_checked_is_the_one_a_trusted_proxy_forwards(
    hosts_app: Quart, forwarded: str, status: int
) -> None:
    headers = {"Host": "localhost", "X-Forwarded-Host": forwarded}
    response = await hosts_app.test_client().get("/hello", headers=headers)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("evil.example", "evil.example"),
        ("evil.example:8443", "evil.example:8443"),
        ("[::2]", "[::2]"),
        ("a" * 101, "a" * 100 + "..."),  # bounded: the client chooses it
    ],
)
@pytest.mark.parametrize("hosts_app", [(DEFAULT, 0)], indirect=True)
async def test_a_refused_host_is_named_with_the_setting_that_refuses_it(
    hosts_app: Quart, host: str, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await hosts_app.test_client().get("/hello", headers={"Host": host})
    assert response.status_code == 400
    page = await response.get_data(as_text=True)
    assert str(escape(f'the Host "{shown}" is not one this site serves')) in page
    assert "TRUSTED_HOSTS" in page
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f'Refused Host "{shown}": not in TRUSTED_HOSTS (add it if this site should answer to it)'
    ]


def first_line(host: str) -> str:
    """Return the line that logs a Host's first refusal in an interval."""
    return f'Refused Host "{host}": not in TRUSTED_HOSTS (add it if this site should answer to it)'


def summary(total: int, hosts: str, unlogged: int, named: str) -> str:
    """Return an interval's summary line."""
    return (
        f"Refused Hosts in the {LOG_INTERVAL:.0f} s from the first of the lines above: {total}"
        f" refusals of {hosts} Hosts, {unlogged} not logged one by one; the most refused:"
        f" {named} (add the site's own names to TRUSTED_HOSTS)"
    )


def logged(refusals: list[tuple[float, str]], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Feed (second, Host) refusals to a RefusalLog on a fake clock; return its warnings."""
    now = [1000.0]
    log = RefusalLog(Quart(__name__), clock=lambda: now[0])
    for second, host in refusals:
        now[0] = 1000.0 + second
        log.refused(host)
    assert all(record.levelno == logging.WARNING for record in caplog.records)
    return [record.getMessage() for record in caplog.records]


MINUTE = LOG_INTERVAL
FLOODS = {
    # Each Host refused once: one line each, and no summary (the lines said it all).
    "a few hosts": (
        [(0, "a.example"), (1, "b.example"), (MINUTE, "c.example")],
        [first_line("a.example"), first_line("b.example"), first_line("c.example")],
    ),
    # attack-26's t_loghide.py: one made-up Host every 0.5 s hid the site's own name.
    "one made-up host hides the site's name": (
        [(t / 2, "noise.example") for t in range(int(MINUTE) * 2)]
        + [(t * 5 + 0.1, "www.mysite.org") for t in range(12)]
        + [(MINUTE, "noise.example")],
        [
            first_line("noise.example"),
            first_line("www.mysite.org"),
            summary(132, "2", 130, '"noise.example" 120, "www.mysite.org" 12'),
            first_line("noise.example"),
        ],
    ),
    # More new Hosts than FIRST_LINES: the rest are counted, and the summary names the top.
    "a burst of new hosts": (
        [(0, f"n{i}.example") for i in range(FIRST_LINES + 3)]
        + [(1, "www.mysite.org")] * 4
        + [(MINUTE, "n0.example")],
        [
            *(first_line(f"n{i}.example") for i in range(FIRST_LINES)),
            summary(
                FIRST_LINES + 7,
                str(FIRST_LINES + 4),
                7,
                '"www.mysite.org" 4, '
                + ", ".join(f'"n{i}.example" 1' for i in range(FIRST_LINES + 3)),
            ),
            first_line("n0.example"),
        ],
    ),
    # The second attack's t26b_hide.py: made-up Hosts take the first lines, and a few of them,
    # refused more often than the site's own name, filled every name the summary gave.
    "made-up hosts outnumber the site's name": (
        [(0, f"n{i}.example") for i in range(FIRST_LINES)]
        + [(1 + t / 100, f"n{t % 5}.example") for t in range(5 * 60)]
        + [(2, "www.mysite.org")] * 40
        + [(MINUTE, "n0.example")],
        [
            *(first_line(f"n{i}.example") for i in range(FIRST_LINES)),
            summary(
                FIRST_LINES * 61 + 40,
                str(FIRST_LINES + 1),
                FIRST_LINES * 60 + 40,
                ", ".join(f'"n{i}.example" 61' for i in range(FIRST_LINES))
                + ', "www.mysite.org" 40',
            ),
            first_line("n0.example"),
        ],
    ),
}


@pytest.mark.parametrize(("refusals", "lines"), FLOODS.values(), ids=FLOODS.keys())
def test_refused_hosts_are_logged_each_at_once_then_summed_up(
    refusals: list[tuple[float, str]], lines: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert logged(sorted(refusals), caplog) == lines


@pytest.mark.parametrize("every", [0.5, 0.1, 0.02])  # seconds between made-up Hosts
def test_a_flood_of_made_up_hosts_costs_few_lines_and_never_hides_a_real_one(
    every: float, caplog: pytest.LogCaptureFixture
) -> None:
    """A new Host every `every` seconds for 5 minutes, and the site's own name every 3 s."""
    minutes = 5
    noise = [(i * every, f"made-up-{i}.example") for i in range(int(minutes * MINUTE / every))]
    real = [(i * 3 + 0.01, "www.mysite.org") for i in range(int(minutes * MINUTE / 3))]
    lines = logged(sorted(noise + real) + [(minutes * MINUTE, "last.example")], caplog)
    summaries = [line for line in lines if line.startswith("Refused Hosts in")]
    assert len(summaries) == minutes
    assert len(lines) <= minutes * (FIRST_LINES + 1) + 1  # bounded, whatever the flood
    # The real name is refused 20 times a minute: each summary names it, first.
    assert all('the most refused: "www.mysite.org" ' in line for line in summaries)


def test_the_counts_table_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    log = RefusalLog(Quart(__name__), clock=lambda: 0.0)
    for i in range(TRACKED * 10):
        log.refused(f"made-up-{i}.example")
    assert len(log.counts) == TRACKED and len(log.logged) == FIRST_LINES


@pytest.mark.system
def test_a_real_server_logs_the_sites_name_among_made_up_ones(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path / "flaskr.sqlite")
    with running(hypercorn_command(port), env, port) as served:
        watched = Watched(served, port)
        for host in [b"noise.example"] * 20 + [b"www.mysite.org"]:
            assert exchange(port, request(b"/hello", b"Host: " + host), linger=None)[0] == 400
        deadline = time.monotonic() + 5
        while first_line("www.mysite.org") not in watched.output():
            assert time.monotonic() < deadline, watched.output()
            time.sleep(0.05)
    assert watched.output().count(first_line("noise.example")) == 1


def test_host_problems() -> None:
    assert host_problem([], None) is None  # HTTP/1.0 with no Host, when any host is served
    assert host_problem([], trusted_names(DEFAULT)) == "no Host header"
    assert trusted_names(None) is None
