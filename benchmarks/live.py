"""The live index under load: idle listeners on one worker, and how fast a post reaches them all.

``.venv/bin/python benchmarks/live.py [--listeners 1000] [--writes 20]`` (or ``run.py --phases
live``). Serves ``hypercorn -k uvloop asgi:app`` (one worker, SQLite, as shipped) and opens the
listeners from this process over plain sockets. Prints the worker's memory per listener,
``/hello`` p99 at one connection with and without them, and the fan-out latency from a create's
302 to the moment the last listener has the event, at each poll interval. The readers share this
process's one core, so the fan-out figures include their own parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SECRET_KEY = "benchmark-secret-key-long-enough-to-serve-it"


def rss_kib(pid: int) -> int:
    """Return a process's resident memory."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match is not None
    return int(match[1])


def worker_rss_kib(pid: int) -> int:
    """Return the resident memory of the server's worker: hypercorn's largest child."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return max(rss_kib(int(child)) for child in children)


def serve(tree: Path, database: Path, port: int, poll: float) -> subprocess.Popen[bytes]:
    """Start hypercorn with one worker on a fresh SQLite file; return once it answers."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
    env.update(
        FLASKR_DATABASE=str(database),
        FLASKR_SECRET_KEY=SECRET_KEY,
        FLASKR_SESSION_COOKIE_SECURE="false",
        FLASKR_LIVE_POLL_INTERVAL=str(poll),
        FLASKR_LIVE_MAX_STREAMS="100000",
    )
    # As shipped: hypercorn.toml's worker_class.
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
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/hello").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError("the server did not start")


class Listener:
    """One idle stream over a plain socket, noting when each title arrives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int) -> Listener:
        """Open the stream and wait for its first message."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while b"retry:" not in first:
            first += await reader.read(4096)
        listener = cls(reader, writer)
        listener.task = asyncio.create_task(listener.read())
        return listener

    async def read(self) -> None:
        """Note the arrival time of every ``"title": "bench N"``."""
        while chunk := await self.reader.read(65536):
            now = time.perf_counter()
            for title in re.findall(rb'"title": "(bench \d+)"', chunk):
                self.seen[title.decode()] = now


def percentile(values: list[float], share: float) -> float:
    """Return the value below which ``share`` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def hello_p99(port: int, count: int = 400) -> float:
    """Return /hello's p99 latency in ms, one request at a time on one connection."""
    times = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(count):
            began = time.perf_counter()
            client.get("/hello").raise_for_status()
            times.append((time.perf_counter() - began) * 1000)
    return percentile(times, 0.99)


def logged_in(port: int) -> httpx.Client:
    """Register and log a user in; return its client."""
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
    credentials = {"username": "bench", "password": "a benchmark password"}
    for path in ("/auth/register", "/auth/login"):
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
        assert token is not None
        client.post(path, data={**credentials, "csrf_token": token[1]})
    return client


def create(client: httpx.Client, title: str) -> float:
    """Create a post; return when its 302 arrived."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/create").text)
    assert token is not None
    response = client.post("/create", data={"title": title, "body": "b", "csrf_token": token[1]})
    assert response.status_code == 302, response.status_code
    return time.perf_counter()


async def fan_out(
    client: httpx.Client, listeners: list[Listener], writes: int, poll: float
) -> list[float]:
    """Create posts one at a time; return each one's latency to its last listener, in ms."""
    latencies = []
    spread = random.Random(0)
    for n in range(writes):
        # At a random point of the poll cycle: right after a poll, a write waits a whole interval.
        await asyncio.sleep(spread.uniform(0, poll))
        title = f"bench {n}"
        acknowledged = await asyncio.to_thread(create, client, title)
        deadline = time.perf_counter() + 30
        while not all(title in listener.seen for listener in listeners):
            assert time.perf_counter() < deadline, "a listener never got the post"
            await asyncio.sleep(0.002)
        latencies.append((max(item.seen[title] for item in listeners) - acknowledged) * 1000)
    return latencies


async def measure(tree: Path, folder: Path, count: int, writes: int, poll: float) -> list[str]:
    """Serve, open the listeners, measure; return the report's lines."""
    port = 20000 + os.getpid() % 20000
    process = serve(tree, folder / f"live-{poll}.sqlite", port, poll)
    client = logged_in(port)
    try:
        quiet_p99 = await asyncio.to_thread(hello_p99, port)
        before = worker_rss_kib(process.pid)
        listeners = []
        for _ in range(0, count, 100):
            listeners += await asyncio.gather(*(Listener.open(port) for _ in range(100)))
        await asyncio.sleep(1)
        after = worker_rss_kib(process.pid)
        busy_p99 = await asyncio.to_thread(hello_p99, port)
        latencies = await fan_out(client, listeners, writes, poll)
        for listener in listeners:
            listener.writer.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        client.close()
    return [
        f"live (LIVE_POLL_INTERVAL {poll} s): {count} idle listeners on 1 worker:"
        f" {(after - before) / count:.1f} KiB each (worker RSS {before / 1024:.0f} ->"
        f" {after / 1024:.0f} MiB); /hello p99 {quiet_p99:.1f} ms alone,"
        f" {busy_p99:.1f} ms beside them; fan-out 302 -> last listener over {writes} creates:"
        f" p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms",
    ]


def run_phase(tree: Path, folder: Path, count: int = 1000, writes: int = 20) -> None:
    """Print the live phase: the shipped poll interval and a short one."""
    print("=" * 100)
    for poll in (1.0, 0.1):
        for line in asyncio.run(measure(tree, folder, count, writes, poll)):
            print(line, flush=True)


def main() -> None:
    """Parse the options and run the phase."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="project tree to serve")
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run_phase(args.tree.resolve(), Path(folder), args.listeners, args.writes)


if __name__ == "__main__":
    main()
