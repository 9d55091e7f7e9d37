"""A TCP proxy that can fall silent without closing, as a NAT or firewall that forgot a link."""

from __future__ import annotations

import asyncio
from types import TracebackType
from urllib.parse import urlsplit


class Link:
    """One proxied connection: both ways pass until it is frozen."""

    def __init__(self, *writers: asyncio.StreamWriter) -> None:
        self.writers = writers
        self.frozen = False


class SilentProxy:
    """Forward TCP connections on 127.0.0.1 to a PostgreSQL server, until frozen.

    A frozen connection stays open at both ends but passes nothing, not even its end: its
    client can only tell by a reply that never comes. Connections opened later pass normally.
    """

    def __init__(self, url: str) -> None:
        self.upstream_url = url
        parts = urlsplit(url)
        assert parts.hostname is not None, "the proxy needs a server reached over TCP"
        self.upstream = (parts.hostname, parts.port or 5432)
        self.links: list[Link] = []
        self.handlers: set[asyncio.Task[None]] = set()
        self.requests: list[bytes] = []  # what clients sent, as forwarded
        self.forwarded = asyncio.Event()
        self.trap: bytes | None = None
        self.server: asyncio.Server | None = None
        self.closing = False

    async def __aenter__(self) -> SilentProxy:
        self.server = await asyncio.start_server(self.accept, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self.server is not None
        self.server.close()
        self.closing = True
        for link in self.links:
            for writer in link.writers:
                writer.close()
        # Each handler ends as its two sockets close (not cancelled: Python 3.11's start_server
        # logs a cancelled handler as an error).
        await asyncio.gather(*self.handlers)
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        """Return the server's URL, pointed at the proxy."""
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        parts = urlsplit(self.upstream_url)
        user, at, _ = parts.netloc.rpartition("@")
        return parts._replace(netloc=f"{user}{at}127.0.0.1:{port}").geturl()

    def freeze(self) -> None:
        """Silence every open connection."""
        for link in self.links:
            link.frozen = True

    def freeze_on(self, marker: bytes) -> None:
        """Silence the connection whose client next sends ``marker`` (b"": anything), unsent."""
        self.trap = marker

    async def until_forwarded(self, marker: bytes, count: int) -> None:
        """Wait until clients have sent ``count`` requests holding ``marker`` through."""
        while sum(marker in request for request in self.requests) < count:
            self.forwarded.clear()
            await self.forwarded.wait()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Connect a new client to the server, then pass bytes both ways."""
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers.add(handler)
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        link = Link(writer, up_writer)
        if self.closing:
            for end in link.writers:
                end.close()
            return
        self.links.append(link)
        await asyncio.gather(
            self.pipe(link, reader, up_writer, from_client=True),
            self.pipe(link, up_reader, writer, from_client=False),
        )

    async def pipe(
        self,
        link: Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        from_client: bool,
    ) -> None:
        """Pass one direction's bytes on, unless the connection is frozen."""
        try:
            while chunk := await reader.read(65536):
                if from_client and self.trap is not None and self.trap in chunk:
                    self.trap = None
                    link.frozen = True
                if link.frozen:
                    continue  # swallowed, as by a network that lost the connection
                writer.write(chunk)
                await writer.drain()
                if from_client:
                    self.requests.append(chunk)
                    self.forwarded.set()
        except ConnectionError:
            pass  # a peer dropped the connection (asyncpg's terminate() may reset it)
        if not link.frozen:
            writer.close()  # pass the end on, as a live network would
