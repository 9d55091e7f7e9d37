"""The live index on one worker: its idle cost, its memory per stream, and its fan-out latency.

``.venv/bin/python -m benchmarks.live [--listeners 1000] [--writes 20] [--silent 100]`` (or
``python -m benchmarks --phases live``), from the project root. Serves ``hypercorn -k uvloop
asgi:app`` (one worker, as shipped) on a fresh SQLite file with the default settings and on a
fresh database of a private PostgreSQL, and talks to it from this process over plain sockets,
each stream from a loopback address of its own (a client may hold only LIVE_STREAMS_PER_CLIENT
streams). Prints, for each backend:

- the worker's CPU time with no stream and no write (SQLite also at LIVE_POLL_INTERVAL 1 s, all
  servers side by side over the same seconds, so that their ratio survives a noisy machine);
- its memory growth for silent clients: posts of the largest allowed body, then streams asking
  for every event since 0 that are never read;
- its memory per idle listener, ``/hello`` p99 at one connection without and beside them, and
  the fan-out latency from a create's 302 to the moment the last listener has the event.

The listeners are read by this process's one event loop, so the fan-out figures include their
own parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks import seed
from benchmarks.harness import ROOT
from benchmarks.processes import hypercorn_worker
from benchmarks.processes import rss_kib
from benchmarks.processes import tree_cpu_seconds
from tests.postgres_server import private_postgres
from tests.postgres_server import with_database
from tests.servers import free_port

SECRET_KEY = "benchmark-secret-key-long-enough-to-serve-it"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
TARGET_P99_MS = 150.0  # the goal for the fan-out to 1,000 listeners
DEFAULT_POLL = 0.05  # LIVE_POLL_INTERVAL's default (flaskr_async/__init__.py)
QUEUE_SIZE = 64  # LIVE_QUEUE_SIZE's default: the longest catch-up still sent as events
# The largest body forms.py allows (BODY_MAX_BYTES), of a character JSON escapes 6-fold.
LARGEST_BODY = "\x01" * (64 * 1024)
STREAM_REQUEST = "GET /events{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


class Site:
    """One hypercorn server with one worker, on one database."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @property
    def worker(self) -> int:
        """Return the worker's pid."""
        return hypercorn_worker(self.process.pid)

    def stop(self) -> None:
        """Stop the server and its worker."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


@contextmanager
def serving(name: str, tree: Path, database: str, **settings: str) -> Iterator[Site]:
    """Serve the tree with one uvloop worker (as shipped) on a database; stop it after."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
    env.update(
        FLASKR_DATABASE=database,
        FLASKR_SECRET_KEY=SECRET_KEY,
        FLASKR_SESSION_COOKIE_SECURE="false",
    )
    env.update({f"FLASKR_{key}": value for key, value in settings.items()})
    port = free_port()
    command = [
        *(sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}"),
        *("--worker-class", "uvloop", "asgi:app"),
    ]
    process = subprocess.Popen(
        command,
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    site = Site(name, process, port)
    try:
        for _ in range(600):
            try:
                if httpx.get(site.url + "/hello").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise TimeoutError(f"{name}: the server did not start")
        yield site
    finally:
        site.stop()


def loopback_client(n: int) -> str:
    """Return the n-th loopback address: a client of its own, with its own share of streams."""
    return f"127.0.{2 + n // 250}.{2 + n % 250}"


class Tally:
    """When each listener received each post created since they opened, in order."""

    def __init__(self, listeners: int) -> None:
        self.listeners = listeners
        self.arrivals: list[list[float]] = []
        self.complete = asyncio.Event()  # every listener has the newest post

    def arrived(self, index: int, now: float) -> None:
        """Note that one listener has post number ``index``."""
        while len(self.arrivals) <= index:
            self.arrivals.append([])
        self.arrivals[index].append(now)
        if len(self.arrivals[index]) == self.listeners:
            self.complete.set()


class Listener:
    """One idle stream over a plain socket, telling the tally when a created event arrives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.created = 0
        self.unfinished = b""  # a message split between two reads
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, site: Site, n: int, tally: Tally) -> Listener:
        """Open the stream from the n-th loopback address; wait for its first message."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", site.port, local_addr=(loopback_client(n), 0)
        )
        writer.write(STREAM_REQUEST.format("").encode())
        first = b""
        while b"retry:" not in first:
            chunk = await reader.read(4096)
            if not chunk:
                raise RuntimeError(f"{site.name}: a stream was refused: {first[:80]!r}")
            first += chunk
        listener = cls(reader, writer)
        listener.task = asyncio.create_task(listener.read(tally))
        return listener

    async def read(self, tally: Tally) -> None:
        """Note the arrival time of every ``event: created``."""
        while chunk := await self.reader.read(65536):
            now = time.perf_counter()
            *messages, self.unfinished = (self.unfinished + chunk).split(b"\n\n")
            for message in messages:
                if b"\nevent: created\n" in message:
                    tally.arrived(self.created, now)
                    self.created += 1

    def close(self) -> None:
        """Close the stream."""
        self.writer.close()


def percentile(values: list[float], share: float) -> float:
    """Return the value below which ``share`` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def hello_p99(site: Site, count: int = 400) -> float:
    """Return /hello's p99 latency in ms, one request at a time on one connection."""
    times = []
    with httpx.Client(base_url=site.url) as client:
        for _ in range(count):
            began = time.perf_counter()
            client.get("/hello").raise_for_status()
            times.append((time.perf_counter() - began) * 1000)
    return percentile(times, 0.99)


class Author:
    """A registered, logged-in user and the create form's token (it belongs to the session)."""

    def __init__(self, site: Site) -> None:
        self.client = httpx.Client(base_url=site.url, timeout=30)
        credentials = {"username": "bench", "password": "a benchmark password"}
        for path in ("/auth/register", "/auth/login"):
            self.client.post(path, data={**credentials, "csrf_token": self.token(path)})
        self.create_token = self.token("/create")

    def token(self, path: str) -> str:
        """Return the CSRF token of the form at ``path``."""
        match = TOKEN.search(self.client.get(path).text)
        assert match is not None, path
        return match[1]

    def create(self, title: str, body: str = "b") -> tuple[float, float]:
        """Create a post; return when it was sent and when its 302 arrived."""
        form = {"title": title, "body": body, "csrf_token": self.create_token}
        sent = time.perf_counter()
        response = self.client.post("/create", data=form)
        acknowledged = time.perf_counter()
        assert response.status_code == 302, response.status_code
        return sent, acknowledged

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def idle_cpu(sites: list[Site], seconds: float) -> dict[str, float]:
    """Return each worker's CPU time over the same ``seconds`` of nothing to do."""
    time.sleep(1)  # past start-up's tail (the first checks, imports on first use)
    workers = {site.name: site.worker for site in sites}
    before = {name: tree_cpu_seconds(pid) for name, pid in workers.items()}
    began = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - began
    return {name: (tree_cpu_seconds(pid) - before[name]) / wall for name, pid in workers.items()}


def silent_client(site: Site, n: int) -> socket.socket:
    """Ask for every event since 0 from the n-th address, with a small buffer; read nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.bind((loopback_client(n), 0))
    sock.connect(("127.0.0.1", site.port))
    sock.sendall(STREAM_REQUEST.format("?since=0").encode())
    return sock


def peek(sock: socket.socket, text: bytes, seconds: float = 15) -> bytes:
    """Wait until ``text`` is in what the socket has received, leaving it unread; return it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            received = sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            received = b""
        if text in received:
            return received
        time.sleep(0.01)
    raise TimeoutError(f"no {text!r} from the server")


def silent_memory(name: str, tree: Path, database: str, posts: int, count: int) -> str:
    """Fill the catch-up with posts of the largest body; return what silent clients cost.

    The posts are written through one server and the clients measured on a fresh one (it
    loads the events from the database): RSS would otherwise hide the clients in memory that
    the large requests freed.
    """
    with serving(name, tree, database) as site:
        author = Author(site)
        try:
            for n in range(posts):
                author.create(f"large {n}", LARGEST_BODY)
        finally:
            author.close()
    with serving(name, tree, database) as site, ExitStack() as stack:
        time.sleep(0.5)
        before = rss_kib(site.worker)
        clients = [stack.enter_context(silent_client(site, n)) for n in range(count)]
        first = peek(clients[0], b"retry:")
        for sock in clients[1:]:
            peek(sock, b"retry:")
        time.sleep(1)
        after = rss_kib(site.worker)
    catch_up = "one reload" if b"event: reload" in first else f"{posts} events"
    return (
        f"{name}: {count} silent clients (since=0, SO_RCVBUF 1024, never read) after {posts}"
        f" posts of a 64 KiB body of U+0001 (catch-up: {catch_up}): worker RSS"
        f" {before / 1024:.0f} -> {after / 1024:.0f} MiB, +{(after - before) / 1024:.1f} MiB,"
        f" {(after - before) / count:.0f} KiB a client"
    )


@dataclass(frozen=True)
class Write:
    """One create: when it was sent, its 302 arrived, its first and last listener had it."""

    sent: float
    acknowledged: float
    first: float
    last: float


async def fan_out(author: Author, tally: Tally, writes: int) -> list[Write]:
    """Create posts one at a time; return when each reached its first and its last listener."""
    done = []
    spread = random.Random(0)
    for n in range(writes):
        # At a random point of SQLite's poll cycle: right after a check, a write waits longest.
        await asyncio.sleep(spread.uniform(0.05, 0.15))
        tally.complete.clear()
        sent, acknowledged = await asyncio.to_thread(author.create, f"bench {n}")
        async with asyncio.timeout(30):
            await tally.complete.wait()
        arrivals = tally.arrivals[n]
        done.append(Write(sent, acknowledged, min(arrivals), max(arrivals)))
    return done


def summary(values: list[float]) -> str:
    """Return the p50 and p99 of a series of seconds, in ms."""
    p50, p99 = statistics.median(values) * 1000, percentile(values, 0.99) * 1000
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"


def cpu_ms(site: Site) -> tuple[float, float]:
    """Return the CPU time so far of the worker and of this process, in ms."""
    return tree_cpu_seconds(site.worker) * 1000, time.process_time() * 1000


def creates_cpu(site: Site, author: Author, count: int) -> tuple[float, float]:
    """Return the CPU time one create costs the worker and this process (ms), nobody listening."""
    worker, here = cpu_ms(site)
    for n in range(count):
        author.create(f"alone {n}")
    after = cpu_ms(site)
    return (after[0] - worker) / count, (after[1] - here) / count


async def listeners_and_fan_out(site: Site, count: int, writes: int) -> list[str]:
    """Open the listeners; return their memory, /hello beside them and the fan-out latency."""
    author = Author(site)
    tally = Tally(count)
    listeners: list[Listener] = []
    try:
        quiet_p99 = await asyncio.to_thread(hello_p99, site)
        alone = await asyncio.to_thread(creates_cpu, site, author, writes)
        await asyncio.sleep(0.5)  # the worker has read those events
        before = rss_kib(site.worker)
        for start in range(0, count, 100):
            batch = range(start, min(count, start + 100))
            listeners += await asyncio.gather(*(Listener.open(site, n, tally) for n in batch))
        await asyncio.sleep(1)
        after = rss_kib(site.worker)
        busy_p99 = await asyncio.to_thread(hello_p99, site)
        began = cpu_ms(site)
        done = await fan_out(author, tally, writes)
        ended = cpu_ms(site)
    finally:
        for listener in listeners:
            listener.close()
        author.close()
    lasts = [write.last - write.acknowledged for write in done]
    p99 = percentile(lasts, 0.99) * 1000
    worker, here = ((ended[i] - began[i]) / writes - alone[i] for i in (0, 1))
    return [
        f"  {count} idle listeners: {(after - before) / count:.1f} KiB each (worker RSS"
        f" {before / 1024:.0f} -> {after / 1024:.0f} MiB); /hello p99 {quiet_p99:.1f} ms alone,"
        f" {busy_p99:.1f} ms beside them",
        f"  fan-out, {writes} creates, 302 -> last of {count} listeners (their parsing included):"
        f" {summary(lasts)}; target p99 <= {TARGET_P99_MS:.0f} ms:"
        f" {'met' if p99 <= TARGET_P99_MS else 'MISSED'}",
        f"    302 -> first listener {summary([w.first - w.acknowledged for w in done])};"
        f" first -> last {summary([w.last - w.first for w in done])};"
        f" POST sent -> 302 {summary([w.acknowledged - w.sent for w in done])}",
        f"    CPU per event beyond a create's own: the worker {worker:.0f} ms, the listeners'"
        f" process {here:.0f} ms (a create alone: {alone[0]:.1f} ms and {alone[1]:.1f} ms)",
    ]


def cpu_line(name: str, checks: str, share: float, window: float) -> str:
    """Return one line of the idle table."""
    seconds = f"({share * window:.2f} s of {window:.0f} s)"
    return f"  {name:<44} {checks:>14} {share * 100:10.2f}%  {seconds}"


def idle_report(
    tree: Path, sqlite: str, sqlite_1s: str, postgresql: str, seconds: float
) -> list[str]:
    """Serve the three change checks side by side; return the table of their idle CPU."""
    with ExitStack() as stack:
        sites = [
            stack.enter_context(serving("sqlite", tree, sqlite)),
            stack.enter_context(serving("sqlite-1s", tree, sqlite_1s, LIVE_POLL_INTERVAL="1")),
            stack.enter_context(serving("postgresql", tree, postgresql)),
        ]
        shares = idle_cpu(sites, seconds)
    # Below one clock tick the 1 s server's share reads 0: no ratio then.
    ratio = f"{shares['sqlite'] / shares['sqlite-1s']:.1f}x" if shares["sqlite-1s"] else "n/a"
    return [
        f"idle, side by side: no stream, no write; the worker's CPU over the same {seconds:.0f} s"
        f" (clock tick {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms)",
        f"  {'server':<44} {'change checks':>14} {'% of a core':>11}",
        cpu_line(
            f"sqlite, LIVE_POLL_INTERVAL {DEFAULT_POLL} s (default)",
            f"{1 / DEFAULT_POLL:.0f}/s",
            shares["sqlite"],
            seconds,
        ),
        cpu_line("sqlite, LIVE_POLL_INTERVAL 1 s", "1/s", shares["sqlite-1s"], seconds),
        cpu_line("postgresql (LISTEN/NOTIFY)", "0 (no poll)", shares["postgresql"], seconds),
        f"  sqlite default / 1 s: {ratio} the CPU for {1 / DEFAULT_POLL:.0f}x the checks",
    ]


def run_phase(
    tree: Path,
    folder: Path,
    count: int = 1000,
    writes: int = 20,
    silent: int = 100,
    idle_seconds: float = 10,
) -> None:
    """Print the live phase for SQLite (default settings) and PostgreSQL."""
    print("=" * 100)
    print(
        "live: hypercorn -k uvloop asgi:app, 1 worker, default live settings; clients in this"
        " process, one loopback address each",
        flush=True,
    )
    began = time.perf_counter()
    with private_postgres() as admin:
        urls = {}
        for name in ("idle", "fanout"):
            seed.create_postgres_database(admin, f"live_{name}")
            urls[name] = with_database(admin, f"live_{name}")
            seed.init_template(tree, urls[name])
        sqlite = {name: str(folder / f"live-{name}.sqlite") for name in ("idle", "idle1", "fanout")}
        for line in idle_report(tree, sqlite["idle"], sqlite["idle1"], urls["idle"], idle_seconds):
            print(line, flush=True)
        for name, database in (("sqlite", sqlite["idle"]), ("postgresql", urls["idle"])):
            print(silent_memory(name, tree, database, QUEUE_SIZE, silent), flush=True)
        for name, database in (("sqlite", sqlite["fanout"]), ("postgresql", urls["fanout"])):
            print(f"{name}:", flush=True)
            # A worker takes LIVE_MAX_STREAMS streams (1,000 by default), listeners beyond it too.
            more = {"LIVE_MAX_STREAMS": str(count)} if count > 1000 else {}
            with serving(name, tree, database, **more) as site:
                for line in asyncio.run(listeners_and_fan_out(site, count, writes)):
                    print(line, flush=True)
    print(f"live phase: {time.perf_counter() - began:.0f} s")


def main() -> None:
    """Parse the options and run the phase."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT, help="project tree to serve")
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--silent", type=int, default=100, help="clients that never read")
    parser.add_argument("--idle-seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run_phase(
            args.tree.resolve(),
            Path(folder),
            args.listeners,
            args.writes,
            args.silent,
            args.idle_seconds,
        )


if __name__ == "__main__":
    main()
