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
# Refusals are logged per interval of this many seconds (per worker): at most FIRST_LINES
# lines at once, then one summary line, however many Hosts a flood makes up.
LOG_INTERVAL = 60.0
# The first refusal of each of this many distinct Hosts in an interval is logged at once.
FIRST_LINES = 5
# Hosts counted per interval (the Space-Saving algorithm): any Host refused more often than
# 1/TRACKED of the interval's refusals is among them, so a name refused often always surfaces,
# while a flood of made-up Hosts costs no more memory than this.
TRACKED = 256
# The summary names this many of the interval's most refused Hosts, and how many there were:
# a few made-up Hosts hammered harder than the site's own name must not push it out of the line.
NAMED = 10


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
    """Log refused Hosts as warnings: each distinct Host's first refusal, then a summary.

    Within an interval the first refusal of each new Host is a line at once (a TRUSTED_HOSTS
    that misses the site's own name is an operator's mistake to see), up to FIRST_LINES; the
    interval's last line, written at the next refusal after it ends, counts the refusals and
    names the most refused Hosts, so made-up Hosts cannot hide a real one.
    """

    def __init__(self, app: Quart, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock
        self.interval_end = -float("inf")
        self.logged: set[str] = set()
        # Host -> (count, overcount): a Host counted in place of an evicted one inherits its
        # count, which it may not have earned.
        self.counts: dict[str, tuple[int, int]] = {}
        self.total = 0
        self.evicted = False  # more distinct Hosts than TRACKED: their number is a floor

    def refused(self, host: str) -> None:
        """Count this refusal; log it if its Host is new in this interval, within FIRST_LINES."""
        now = self.clock()
        if now >= self.interval_end:
            self.summarize()
            self.interval_end = now + LOG_INTERVAL
        self.count(host)
        if host in self.logged or len(self.logged) >= FIRST_LINES:
            return
        self.logged.add(host)
        # app.logger now, not at start-up: its first use adds Quart's handler. The Host pattern
        # lets no quote or control character through; escaped all the same, as every log line
        # quoting a client's text is (logs.escaped), should the pattern ever widen.
        self.app.logger.warning(
            'Refused Host "%s": not in TRUSTED_HOSTS (add it if this site should answer to it)',
            escaped(host),
        )

    def count(self, host: str) -> None:
        """Count a refusal of this Host, in place of the least counted one if the table is full."""
        self.total += 1
        if host in self.counts:
            count, over = self.counts[host]
            self.counts[host] = (count + 1, over)
        elif len(self.counts) < TRACKED:
            self.counts[host] = (1, 0)
        else:
            least = min(self.counts, key=lambda name: self.counts[name][0])
            floor, _ = self.counts.pop(least)
            self.counts[host] = (floor + 1, floor)
            self.evicted = True

    def summarize(self) -> None:
        """Log the interval's count and most refused Hosts, unless its lines said it all."""
        if self.total > len(self.logged):
            # Ranked by the refusals each Host surely had: an inherited count ranks nothing.
            ranked = sorted(
                self.counts.items(), key=lambda item: (item[1][1] - item[1][0], item[0])
            )
            named = ", ".join(
                f'"{escaped(host)}" {"at least " if over else ""}{count - over}'
                for host, (count, over) in ranked[:NAMED]
            )
            hosts = f"more than {TRACKED}" if self.evicted else str(len(self.counts))
            self.app.logger.warning(
                "Refused Hosts in the %d s from the first of the lines above: %d refusals of %s"
                " Hosts, %d not logged one by one; the most refused: %s (add the site's own"
                " names to TRUSTED_HOSTS)",
                LOG_INTERVAL,
                self.total,
                hosts,
                self.total - len(self.logged),
                named,
            )
        self.logged.clear()
        self.counts.clear()
        self.total = 0
        self.evicted = False


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
