"""Data integrity through real servers: concurrent writers, kill -9, SIGTERM, online backup."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import AsyncExitStack
from contextlib import asynccontextmanager
from contextlib import closing
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.fork_server import ForkServer
from tests.fork_server import fork_server
from tests.helpers import csrf_token_of
from tests.servers import ROOT
from tests.servers import TLS
from tests.servers import backend_of
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env
from tests.servers import stored_titles

CREDENTIALS = {"username": "writer", "password": "correct horse"}
LOCKED = "database is locked"

WRITERS = 50
CREATES = 1000
CRASH_ROUNDS = 20
CRASH_STREAMS = 4
CRASH_SEED = 20250611
IN_FLIGHT = 20
LATE = 5


class Browser:
    """One user's browser: its own connections, session cookie and CSRF token."""

    def __init__(self, url: str, session: str = "", token: str = "") -> None:
        # No cookie jar: the session has to outlive a server (and its port) in the crash test.
        # A connection idle for about hypercorn's keep-alive timeout (5 s) may be closed by the
        # server just as the next request goes out on it, which fails that request (seen
        # under load, when writers wait for the others' logins): a browser drops idle ones
        # well before, as browsers do.
        limits = httpx.Limits(keepalive_expiry=2)
        self.client = httpx.AsyncClient(base_url=url, timeout=30, limits=limits, verify=TLS)
        self.session = session
        self.token = token

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send the session cookie; keep the one the server sets."""
        response = await self.client.request(
            method, path, headers={"Cookie": f"session={self.session}"}, **kwargs
        )
        if match := re.search(r"session=([^;]*)", response.headers.get("set-cookie", "")):
            self.session = match.group(1)
        return response

    async def submit(self, path: str, form: dict[str, str]) -> httpx.Response:
        """Load a form page, then post the form with the token it carries."""
        self.token = csrf_token_of((await self.request("GET", path)).text)
        return await self.request("POST", path, data={**form, "csrf_token": self.token})

    async def log_in(self) -> None:
        """Log the writer in and keep the token of the new session."""
        response = await self.submit("/auth/login", CREDENTIALS)
        assert response.headers.get("location") == "/", f"login: {response.status_code}"
        # Logging in starts a fresh session, so the token from the login page is void.
        self.token = csrf_token_of((await self.request("GET", "/create")).text)

    async def create(self, title: str) -> httpx.Response:
        """Post the create form with the session's token, without loading the page first."""
        form = {"title": title, "body": "", "csrf_token": self.token}
        return await self.request("POST", "/create", data=form)


@asynccontextmanager
async def browsers(
    url: str, count: int, session: str = "", token: str = ""
) -> AsyncIterator[list[Browser]]:
    """Open browsers for a block, all closed however it ends."""
    async with AsyncExitStack() as stack:
        group = []
        for _ in range(count):
            browser = Browser(url, session, token)
            stack.push_async_callback(browser.client.aclose)
            group.append(browser)
        yield group


async def register_writer(url: str) -> tuple[str, str]:
    """Register the writer and log in once; return the session cookie and its CSRF token."""
    async with browsers(url, 1) as (browser,):
        registered = await browser.submit("/auth/register", CREDENTIALS)
        assert registered.headers.get("location") == "/auth/login", registered.text
        await browser.log_in()
        return browser.session, browser.token


@dataclass
class Tally:
    """What the clients saw of their create requests."""

    sent: int = 0
    acknowledged: set[str] = field(default_factory=set)
    unanswered: set[str] = field(default_factory=set)  # connection refused, reset or timed out
    failures: list[str] = field(default_factory=list)  # any other answer: "status title"
    locked: int = 0

    def add(self, other: Tally) -> None:
        """Add another tally's figures to this one."""
        self.sent += other.sent
        self.acknowledged |= other.acknowledged
        self.unanswered |= other.unanswered
        self.failures += other.failures
        self.locked += other.locked


def record(tally: Tally, title: str, response: httpx.Response) -> None:
    """Tally one answer: only a redirect to the index acknowledges a create."""
    if LOCKED in response.text:
        tally.locked += 1
    if response.status_code in (302, 303) and response.headers.get("location") == "/":
        tally.acknowledged.add(title)
    else:
        tally.failures.append(f"{response.status_code} {title}")


async def write_posts(
    browser: Browser, prefix: str, tally: Tally, limit: int, stop: asyncio.Event | None = None
) -> None:
    """Create up to ``limit`` posts one after another, until told to stop or the server is gone."""
    for n in range(limit):
        if stop is not None and stop.is_set():
            return
        title = f"{prefix}-{n}"
        tally.sent += 1
        try:
            response = await browser.create(title)
        except httpx.TransportError:
            tally.unanswered.add(title)
            return
        record(tally, title, response)


async def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Poll a condition until it holds, failing after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def sqlite_problems(path: str) -> list[str]:
    """Return what SQLite's integrity and foreign key checks report (nothing: no problem)."""
    with closing(sqlite3.connect(path)) as connection:
        integrity = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        orphans = [repr(tuple(row)) for row in connection.execute("PRAGMA foreign_key_check")]
    return ([] if integrity == ["ok"] else integrity) + orphans


async def inspect(database: str) -> tuple[list[str], list[str]]:
    """Return the stored titles and, for SQLite, the problems its checks find."""
    problems = sqlite_problems(database) if backend_of(database) == "sqlite" else []
    return await stored_titles(database), problems


async def test_concurrent_writers_lose_nothing(database_url: str) -> None:
    started = time.monotonic()
    port = free_port()
    command = hypercorn_command(port, "-w", "2")
    with running(command, server_env(database_url), port) as server:
        await register_writer(server.url)
        tally = Tally()
        async with browsers(server.url, WRITERS) as group:
            # Each writer logs in for a session of its own (the hashes queue up: ~4 s), five at a
            # time: attempts still being checked count toward the throttle's limit of 10 per
            # username and address until they succeed.
            for first in range(0, WRITERS, 5):
                await asyncio.gather(*(browser.log_in() for browser in group[first : first + 5]))
            writing = time.monotonic()
            per_writer = CREATES // WRITERS
            await asyncio.gather(
                *(write_posts(b, f"w{n}", tally, per_writer) for n, b in enumerate(group))
            )
            write_seconds = time.monotonic() - writing
        status = server.stop()
        output = server.output()
    titles, problems = await inspect(database_url)
    figures = (
        f"concurrent writers [{backend_of(database_url)}]: {tally.sent} requests,"
        f" {len(tally.acknowledged)} acknowledged, {len(titles)} rows,"
        f" {len(tally.failures)} errors, {len(tally.unanswered)} unanswered,"
        f" {tally.locked} locked, {write_seconds:.1f} s writing,"
        f" {time.monotonic() - started:.1f} s in all"
    )
    print(figures)
    assert not tally.failures, f"{figures}; {tally.failures[:10]}"
    assert tally.locked == 0 and LOCKED not in output, f"{figures}\n{output[-3000:]}"
    assert not tally.unanswered, figures
    assert tally.sent == len(tally.acknowledged) == CREATES, figures
    assert len(titles) == CREATES and set(titles) == tally.acknowledged, figures
    assert problems == [], f"{figures}; {problems[:10]}"
    assert status == 0, output


async def crash_round(
    forks: ForkServer, number: int, rng: random.Random, login: tuple[str, str] | None
) -> tuple[Tally, tuple[str, str]]:
    """Serve, stream creates, SIGKILL the server at a random moment; return what was seen."""
    tally = Tally()
    # `hypercorn -w 0 asgi:app`, forked from a process that imported it once for all rounds:
    # one process, no master, the same writes, and a start-up of a tenth of the CPU.
    with forks.serving(free_port()) as server:
        session, token = login or await register_writer(server.url)
        async with browsers(server.url, CRASH_STREAMS, session, token) as group:
            streams = [
                asyncio.create_task(write_posts(browser, f"r{number}-{n}", tally, 10_000))
                for n, browser in enumerate(group)
            ]
            # The random moment itself: the kill lands wherever the writes happen to be.
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            server.kill()
            await asyncio.wait_for(asyncio.gather(*streams), 30)
    return tally, (session, token)


async def test_kill_9_loses_no_acknowledged_create(database_url: str) -> None:
    started = time.monotonic()
    rng = random.Random(CRASH_SEED)
    print(f"crash rounds: seed {CRASH_SEED}")
    totals, login, present, late = Tally(), None, 0, 0
    with fork_server(server_env(database_url)) as forks:
        for number in range(CRASH_ROUNDS):
            tally, login = await crash_round(forks, number, rng, login)
            titles, problems = await inspect(database_url)
            stored = set(titles)
            lost = tally.acknowledged - stored
            where = f"round {number} (seed {CRASH_SEED})"
            assert problems == [], f"{where}: {problems[:10]}"
            assert not lost, f"{where}: acknowledged but lost: {sorted(lost)[:10]}"
            assert not tally.failures, f"{where}: {tally.failures[:10]}"
            # Each stream ended on a request the kill cut off, not by running out of posts.
            assert len(tally.unanswered) == CRASH_STREAMS, where
            assert len(titles) == len(stored), f"{where}: a create was stored twice"
            totals.add(tally)
            present += len(tally.acknowledged & stored)
            late += len(tally.unanswered & stored)  # committed, but killed before answering
    print(
        f"kill -9 [{backend_of(database_url)}]: {CRASH_ROUNDS} rounds, {totals.sent} requests,"
        f" {len(totals.acknowledged)} acknowledged, {present} present,"
        f" {len(totals.acknowledged) - present} lost,"
        f" {len(totals.unanswered)} unanswered ({late} of them stored),"
        f" {time.monotonic() - started:.1f} s"
    )
    assert totals.acknowledged, "no create was acknowledged before a kill: nothing was tested"


@dataclass
class Gate:
    """Where held request bodies wait: who has arrived, and the signal to go on."""

    arrived: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    release: asyncio.Event = field(default_factory=asyncio.Event)


async def held_create(
    client: httpx.AsyncClient, login: tuple[str, str], title: str, gate: Gate
) -> httpx.Response:
    """Post a create whose body stops halfway until released: a request the server holds."""
    session, token = login
    body = urlencode({"title": title, "body": "", "csrf_token": token}).encode()
    half = len(body) // 2

    async def content() -> AsyncIterator[bytes]:
        yield body[:half]
        # httpx asks for the next chunk once the first is written to the socket.
        await gate.arrived.put(title)
        await gate.release.wait()
        yield body[half:]

    headers = {
        "Cookie": f"session={session}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
    }
    return await client.post("/create", content=content(), headers=headers)


async def wait_until_not_accepting(url: str, timeout: float = 10) -> None:
    """Poll /hello on fresh connections until none is answered: the worker began shutting down."""
    async with asyncio.timeout(timeout):
        while True:
            async with httpx.AsyncClient(base_url=url, timeout=0.5, verify=TLS) as probe:
                try:
                    await probe.get("/hello")
                except httpx.TransportError:
                    return
            await asyncio.sleep(0.01)


async def late_create(url: str, session: str, token: str, title: str) -> httpx.Response | str:
    """Post a create after shutdown began; return the answer, or the error if there was none."""
    async with browsers(url, 1, session, token) as (browser,):
        try:
            return await browser.create(title)
        except httpx.TransportError as error:
            return type(error).__name__


async def test_sigterm_finishes_requests_in_flight(database_url: str) -> None:
    started = time.monotonic()
    port = free_port()
    command = hypercorn_command(port, "--graceful-timeout", "10")  # as in hypercorn.toml
    with running(command, server_env(database_url), port) as server:
        session, token = login = await register_writer(server.url)
        gate = Gate()
        async with httpx.AsyncClient(base_url=server.url, timeout=30, verify=TLS) as client:
            held = [
                asyncio.create_task(held_create(client, login, f"g{n}", gate))
                for n in range(IN_FLIGHT)
            ]
            async with asyncio.timeout(20):
                for _ in held:
                    await gate.arrived.get()
            # Accepted after every held connection (the backlog is FIFO): the worker has them all.
            assert (await client.get("/hello")).status_code == 200
            server.process.send_signal(signal.SIGTERM)  # the master alone, as `kill PID` does
            await wait_until_not_accepting(server.url)
            # The master still holds the listening socket: these connect and wait in the
            # backlog, unserved, until it closes (a reset), so their posts are never written.
            late = [
                asyncio.create_task(late_create(server.url, session, token, f"late{n}"))
                for n in range(LATE)
            ]
            gate.release.set()
            answers = await asyncio.wait_for(asyncio.gather(*held), 20)
            late_answers = await asyncio.wait_for(asyncio.gather(*late), 20)
        status = server.process.wait(15)
        output = server.output()
    seconds = time.monotonic() - started
    tally = Tally(sent=IN_FLIGHT + LATE)
    for n, response in enumerate(answers):
        record(tally, f"g{n}", response)
    for n, late_answer in enumerate(late_answers):
        if isinstance(late_answer, str):
            tally.unanswered.add(f"late{n}")
        else:
            record(tally, f"late{n}", late_answer)
    errors = sorted({answer for answer in late_answers if isinstance(answer, str)})
    titles = set(await stored_titles(database_url))
    wal, shm = Path(database_url + "-wal"), Path(database_url + "-shm")
    figures = (
        f"SIGTERM [{backend_of(database_url)}]: {IN_FLIGHT} held + {LATE} late requests,"
        f" {len(tally.acknowledged)} acknowledged, {len(tally.unanswered)} unanswered {errors},"
        f" {len(tally.failures)} errors, {len(titles)} rows, exit {status}, {seconds:.1f} s"
    )
    print(figures)
    assert not tally.failures, f"{figures}; {tally.failures}\n{output[-3000:]}"
    assert {f"g{n}" for n in range(IN_FLIGHT)} <= tally.acknowledged, figures
    assert tally.acknowledged <= titles, figures
    assert status == 0, output
    assert "Database closed" in output, output
    if backend_of(database_url) == "sqlite":
        # The last connection's clean close checkpoints the log and removes it and its index.
        assert not wal.exists() and not shm.exists(), figures


async def run_backup(database: str, target: Path) -> tuple[int, str]:
    """Run the backup command in its own process; return its status and output."""
    command = [sys.executable, "-m", "quart", "--app", "flaskr_async", "backup", str(target)]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=server_env(database),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


@pytest.mark.sqlite_only  # PostgreSQL's backup is pg_dump, tested in test_postgres.py
async def test_online_backup_during_writes(database_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    copy = tmp_path / "copy.sqlite"
    port = free_port()
    with running(hypercorn_command(port), server_env(database_url), port) as server:
        session, token = await register_writer(server.url)
        tally, stop = Tally(), asyncio.Event()
        async with browsers(server.url, 2, session, token) as group:
            streams = [
                asyncio.create_task(write_posts(browser, f"b{n}", tally, 10_000, stop))
                for n, browser in enumerate(group)
            ]
            try:
                await wait_until(lambda: len(tally.acknowledged) >= 20)
                before = set(tally.acknowledged)
                status, out = await run_backup(database_url, copy)
                during = len(tally.acknowledged) - len(before)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*streams), 30)
        assert server.stop() == 0
    copied, problems = set(await stored_titles(str(copy))), sqlite_problems(str(copy))
    live = set(await stored_titles(database_url))
    figures = (
        f"online backup: {tally.sent} requests, {len(before)} acknowledged before the backup,"
        f" {during} during it, {len(copied)} rows in the copy, {len(live)} live rows,"
        f" {len(tally.failures)} errors, {time.monotonic() - started:.1f} s"
    )
    print(figures)
    said = f"Backed up the database {database_url} to {copy}."
    assert status == 0 and out.strip().endswith(said), out
    assert problems == [], f"{figures}; {problems[:10]}"
    assert before <= copied, f"{figures}; missing: {sorted(before - copied)[:10]}"
    assert copied <= live, figures  # the copy holds nothing the database does not
    assert not tally.failures and tally.locked == 0, f"{figures}; {tally.failures[:10]}"
    assert tally.acknowledged <= live, figures
    assert during > 0, f"{figures}: the writes stalled while the backup ran"
