"""Refuse malformed request targets, ambiguous framing and foreign hosts before Quart runs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator

from hypercorn.typing import ASGIFramework
from hypercorn.typing import ASGIReceiveCallable
from hypercorn.typing import ASGISendCallable
from hypercorn.typing import HTTPScope
from hypercorn.typing import Scope
from markupsafe import escape
from quart import Quart
from quart import render_template

from flaskr_async.middleware.security import SECURITY_HEADERS

# werkzeug's host_is_trusted pattern: a name or IPv4 address, or a bracketed IPv6 one, and a port.
HOST = re.compile(rb"([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::([1-9][0-9]{0,4}))?", re.IGNORECASE)
# Outside printable ASCII: h11 already refuses these, other servers (and HTTP/2) may not.
UNPRINTABLE = re.compile(rb"[^\x21-\x7e]")
BAD_ESCAPE = re.compile(rb"%(?![0-9a-fA-F]{2})")
# Decoded from %00-%1f or %7f: no route has them, and they end up in logs and headers.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
]


# How much of a refused Host a page or a log line shows: it is the client's to choose.
SHOWN_HOST = 100
# A flood of refused Hosts logs one line per this many seconds (per worker), with a count.
LOG_INTERVAL = 60.0


class ForeignHost(str):
    """The refusal of a Host outside TRUSTED_HOSTS: a problem text that names the Host."""

    host: str

    def __new__(cls, raw: bytes) -> ForeignHost:
        # HOST's pattern let only letters, digits, ".-:[]" through: nothing to escape.
        host = raw[:SHOWN_HOST].decode("ascii") + ("..." if len(raw) > SHOWN_HOST else "")
        problem = super().__new__(
            cls,
            f'the Host "{host}" is not one this site serves. If it should be, add it to the'
            " TRUSTED_HOSTS setting (FLASKR_TRUSTED_HOSTS; docs/deployment.md)",
        )
        problem.host = host
        return problem


class RefusalLog:
    """Log refused Hosts as warnings, at most one line per LOG_INTERVAL, counting the rest.

    The first refusal shows at once (a TRUSTED_HOSTS that misses the site's own name is an
    operator's mistake to see); a flood of made-up Hosts costs one line a minute per worker.
    """

    def __init__(self, app: Quart, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock
        self.quiet_until = -float("inf")
        self.unlogged = 0

    def refused(self, host: str) -> None:
        """Log this refusal, unless a line went out less than LOG_INTERVAL ago."""
        now = self.clock()
        if now < self.quiet_until:
            self.unlogged += 1
            return
        self.quiet_until = now + LOG_INTERVAL
        since = f"; {self.unlogged} more since the last such line" if self.unlogged else ""
        self.unlogged = 0
        # app.logger now, not at start-up: its first use adds Quart's handler.
        self.app.logger.warning(
            'Refused Host "%s": not in TRUSTED_HOSTS (add it if this site should answer to it)%s',
            host,
            since,
        )


class RefusalPage:
    """templates/error.html for the boundary's 400s, rendered once; each refusal adds its text."""

    MARK = "the-refusal-goes-here"

    def __init__(self, app: Quart) -> None:
        self.app = app
        self.parts: tuple[str, str] | None = None

    async def body(self, problem: str) -> bytes:
        """Return the page saying why the request was refused (escaped: the client chose it)."""
        if self.parts is None:
            # The request never reaches Quart: a bare request context is all the layout needs
            # (anonymous navigation, nothing flashed), the same for every refusal.
            async with self.app.test_request_context("/"):
                page = await render_template(
                    "error.html", code=400, name="Bad Request", description=self.MARK
                )
            before, _, after = page.partition(self.MARK)
            self.parts = (before, after)
        before, after = self.parts
        return f"{before}{escape(f'The request was refused: {problem}.')}{after}".encode()


def trusted_names(hosts: Iterable[str] | None) -> frozenset[str] | None:
    """Return the TRUSTED_HOSTS names in lower case; None trusts every host.

    ".example.org" stays in the set as a suffix and adds example.org itself. The settings
    check has already refused a bare string, an empty list and blank names.
    """
    if hosts is None:
        return None
    names = {name.lower() for name in hosts}
    return frozenset(names | {name[1:] for name in names if name.startswith(".")})


def dots(name: str) -> Iterator[int]:
    """Yield the position of every dot in a host name."""
    dot = name.find(".")
    while dot != -1:
        yield dot
        dot = name.find(".", dot + 1)


def host_problem(values: list[bytes], trusted: frozenset[str] | None) -> str | None:
    """Say what is wrong with a request's Host headers, if anything."""
    if len(values) > 1:
        return "more than one Host header"
    if not values:
        return None if trusted is None else "no Host header"
    match = HOST.fullmatch(values[0])
    if match is None or (match[2] is not None and int(match[2]) > 65535):
        return "a malformed Host header"
    if trusted is None:
        return None
    name = match[1].decode().lower()
    # ".example.org" also matches example.org's subdomains, as in werkzeug.
    if name in trusted or any(name[dot:] in trusted for dot in dots(name)):
        return None
    return ForeignHost(values[0])


def target_problem(scope: HTTPScope) -> str | None:
    """Say what is wrong with a request's target (its path), if anything."""
    raw = scope.get("raw_path") or scope["path"].encode()
    if not raw.startswith(b"/"):
        # Empty, "*", or absolute-form ("http://host/path"), whose authority would
        # override the Host header checked below.
        return "a request target that is not a path"
    if UNPRINTABLE.search(raw) or BAD_ESCAPE.search(raw) or CONTROL.search(scope["path"]):
        return "a malformed path"
    return None


def request_problem(scope: HTTPScope, trusted: frozenset[str] | None) -> str | None:
    """Say why the request must be refused before the app sees it, if it must."""
    names = [name.lower() for name, _ in scope["headers"]]
    if b"content-length" in names and b"transfer-encoding" in names:
        # RFC 9112 6.1: ambiguous framing (request smuggling); close the connection.
        return "both Content-Length and Transfer-Encoding"
    hosts = [value for name, value in scope["headers"] if name.lower() == b"host"]
    return target_problem(scope) or host_problem(hosts, trusted)


class Boundary:
    """ASGI middleware answering 400 (and closing) for requests the app must never see."""

    def __init__(
        self,
        app: ASGIFramework,
        trusted_hosts: Iterable[str] | str | None,
        refusals: RefusalLog,
        page: RefusalPage,
    ) -> None:
        self.app = app
        self.trusted = trusted_names(trusted_hosts)
        self.refusals = refusals
        self.page = page

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            # The app serves no WebSocket, and Quart's error page for one raises (no request
            # context): close before the handshake is accepted, which the server answers 403.
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
        elif (problem := request_problem(scope, self.trusted)) is not None:
            if isinstance(problem, ForeignHost):
                self.refusals.refused(problem.host)
            await refuse(scope["http_version"], await self.page.body(problem), send)
        else:
            await self.app(scope, receive, send)


async def refuse(http_version: str, body: bytes, send: ASGISendCallable) -> None:
    """Answer 400 with this page; over HTTP/1 also close the connection."""
    headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
    if http_version.startswith("1"):
        # h11 then closes after the response instead of waiting for the next request;
        # HTTP/2 forbids the header (its stream simply ends).
        headers.append((b"connection", b"close"))
    await send(
        {"type": "http.response.start", "status": 400, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def init_app(app: Quart) -> None:
    """Check every request at the boundary; call before ProxyFix wraps the app."""
    # Inside ProxyFix: the Host checked is the one the app uses (X-Forwarded-Host from a
    # trusted proxy), and ProxyFix behaves exactly as before.
    app.asgi_app = Boundary(  # type: ignore[method-assign]
        app.asgi_app, app.config["TRUSTED_HOSTS"], RefusalLog(app), RefusalPage(app)
    )
