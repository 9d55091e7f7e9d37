"""How the boundary says no: its page, the Host it names, and a bounded log of refused Hosts."""

from __future__ import annotations

import time
from collections.abc import Callable

from markupsafe import escape
from quart import Quart
from quart import render_template

from flaskr_async.logs import escaped

# How much of a refused Host a page or a log line shows: it is the client's to choose.
SHOWN_HOST = 100
# A flood of refused Hosts logs one line per this many seconds (per worker), with a count.
LOG_INTERVAL = 60.0


class ForeignHost(str):
    """The refusal of a Host outside TRUSTED_HOSTS: a problem text that names the Host."""

    host: str

    def __new__(cls, raw: bytes) -> ForeignHost:
        # The Host pattern let only letters, digits and ".-:[]" through: no line breaks or
        # control characters reach the log; the page escapes the quotes.
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
        # app.logger now, not at start-up: its first use adds Quart's handler. The Host pattern
        # lets no quote or control character through; escaped all the same, as every log line
        # quoting a client's text is (logs.escaped), should the pattern ever widen.
        self.app.logger.warning(
            'Refused Host "%s": not in TRUSTED_HOSTS (add it if this site should answer to it)%s',
            escaped(host),
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
