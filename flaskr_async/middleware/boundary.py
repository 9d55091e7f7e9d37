"""Refuse malformed request targets, ambiguous framing and foreign hosts before Quart runs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Iterator

from hypercorn.typing import ASGIFramework
from hypercorn.typing import ASGIReceiveCallable
from hypercorn.typing import ASGISendCallable
from hypercorn.typing import HTTPScope
from hypercorn.typing import Scope
from quart import Quart

from flaskr_async.host_names import HOST_NAME
from flaskr_async.middleware.refusals import ForeignHost
from flaskr_async.middleware.refusals import RefusalLog
from flaskr_async.middleware.refusals import RefusalPage
from flaskr_async.middleware.security import SECURITY_HEADERS

# werkzeug's host_is_trusted pattern: a name or IPv4 address, or a bracketed IPv6 one, and a port.
HOST = re.compile(rf"({HOST_NAME})(?::([1-9][0-9]{{0,4}}))?".encode(), re.IGNORECASE)
# Outside printable ASCII: h11 already refuses these, other servers (and HTTP/2) may not.
UNPRINTABLE = re.compile(rb"[^\x21-\x7e]")
BAD_ESCAPE = re.compile(rb"%(?![0-9a-fA-F]{2})")
# Decoded from %00-%1f, %7f or a C1 control's UTF-8 (%c2%80-%c2%9f, CSI among them): no route
# has them, and they end up in logs (Quart's "Exception on request GET /path" line) and headers.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
]


def trusted_names(hosts: Iterable[str] | None) -> frozenset[str] | None:
    """Return the TRUSTED_HOSTS names in lower case; None trusts every host.

    ".example.org" stays in the set as a suffix and adds example.org itself. The settings
    check has already refused a bare string, an empty list and names no Host can match.
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
