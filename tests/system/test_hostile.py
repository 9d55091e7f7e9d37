"""Hostile clients through a real hypercorn, on both backends: stalled uploads, raced guesses."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from contextlib import asynccontextmanager
from urllib.parse import urlencode
from urllib.parse import urlsplit

import httpx

from tests.helpers import csrf_token_of
from tests.servers import TLS
from tests.servers import Server
from tests.servers import backend_of
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env

POOL_SIZES = {"sqlite": 1, "postgresql": 4}  # each backend's default DATABASE_POOL_SIZE
CREDENTIALS = {"username": "alice", "password": "correct horse"}
GUESSES = 40
LIMIT = 10  # LOGIN_MAX_FAILURES_PER_USERNAME


class Browser:
    """An httpx client that keeps the session cookie and the CSRF token of its last form."""

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=10, verify=TLS)
        self.token = ""

    async def submit(self, path: str, form: dict[str, str]) -> httpx.Response:
        """Load a form page, then post the form with its token."""
        self.token = csrf_token_of((await self.client.get(path)).text)
        return await self.client.post(path, data={**form, "csrf_token": self.token})

    def cookie_header(self) -> str:
        """Return the Cookie header this browser sends."""
        return "; ".join(f"{name}={value}" for name, value in self.client.cookies.items())


@asynccontextmanager
async def logged_in_browser(url: str, username: str = "alice") -> AsyncIterator[Browser]:
    """Register a user and log them in; yield the browser, with a token of the new session."""
    browser = Browser(url)
    credentials = {**CREDENTIALS, "username": username}
    try:
        assert (await browser.submit("/auth/register", credentials)).status_code == 302
        assert (await browser.submit("/auth/login", credentials)).headers["location"] == "/"
        browser.token = csrf_token_of((await browser.client.get("/create")).text)
        yield browser
    finally:
        await browser.client.aclose()


def raw_request(url: str, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """Return the bytes of an HTTP/1.1 request."""
    host = urlsplit(url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_socket(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the server of a URL."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def stalled_upload(url: str, cookie: str, token: str, path: str, trickle: bool) -> None:
    """Send a form's headers and the start of its body, then nothing (or a byte a second)."""
    reader, writer = await open_socket(url)
    headers = {
        "Cookie": cookie,
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": "1000",
    }
    writer.write(raw_request(url, "POST", path, headers, f"csrf_token={token}&title=x".encode()))
    await writer.drain()
    try:
        while True:
            await asyncio.sleep(1)
            if trickle:
                writer.write(b"x")
                await writer.drain()
    finally:
        writer.close()


async def cancelled(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel tasks and wait until each has ended (and run its ``finally``)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def timed_get(client: httpx.AsyncClient, path: str, cookie: str = "") -> float:
    """GET a page; return how long the 200 took, in seconds."""
    started = time.monotonic()
    response = await client.get(path, headers={"Cookie": cookie} if cookie else {})
    assert response.status_code == 200, response.status_code
    return time.monotonic() - started


async def test_stalled_uploads_hold_no_connection(database_url: str) -> None:
    stalled = max(20, 10 * POOL_SIZES[backend_of(database_url)])
    port = free_port()
    with running(hypercorn_command(port), server_env(database_url), port) as server:
        async with logged_in_browser(server.url) as alice, AsyncExitStack() as stack:
            cookie = alice.cookie_header()
            # Creates and logins, silent and trickling: none may hold a connection or a hash slot.
            uploads = [
                asyncio.create_task(stalled_upload(server.url, cookie, alice.token, path, trickle))
                for n in range(stalled // 4)
                for path in ("/create", "/auth/login")
                for trickle in (False, True)
            ]
            # Awaited, not only cancelled: each upload then closes its socket, and the server's
            # stop does not wait out its graceful timeout for connections still open.
            stack.push_async_callback(cancelled, uploads)
            await asyncio.sleep(1.5)  # every upload is in and waiting on its body
            assert not any(task.done() for task in uploads)
            anonymous = httpx.AsyncClient(base_url=server.url, timeout=10, verify=TLS)
            stack.push_async_callback(anonymous.aclose)
            timings = []
            for _ in range(3):
                timings.append(await timed_get(anonymous, "/"))
                timings.append(await timed_get(alice.client, "/create"))
            assert "alice" in (await alice.client.get("/")).text
            started = time.monotonic()
            async with logged_in_browser(server.url, "bob") as bob:
                assert "bob" in (await bob.client.get("/")).text
            sign_up_and_log_in = time.monotonic() - started
    print(
        f"{len(uploads)} stalled uploads: page times {[round(t, 3) for t in timings]} s;"
        f" a sign-up and login {sign_up_and_log_in:.2f} s"
    )
    assert max(timings) < 1
    assert sign_up_and_log_in < 3  # two argon2id hashes and five pages, on a busy machine


async def guess(
    server: Server, cookie: str, token: str, password: str, release: asyncio.Event
) -> tuple[int, str]:
    """Send a login but its last byte, wait for the release, then send it; return the answer."""
    body = urlencode({"username": "alice", "password": password, "csrf_token": token}).encode()
    headers = {
        "Cookie": cookie,
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    reader, writer = await open_socket(server.url)
    try:
        request = raw_request(server.url, "POST", "/auth/login", headers, body)
        writer.write(request[:-1])
        await writer.drain()
        await release.wait()
        writer.write(request[-1:])
        await writer.drain()
        answer = (await asyncio.wait_for(reader.read(), 60)).decode(errors="replace")
    finally:
        writer.close()
    status = int(answer.split(" ", 2)[1])
    return status, answer


async def test_a_burst_of_guesses_verifies_at_most_the_limit(database_url: str) -> None:
    port = free_port()
    with running(hypercorn_command(port, "-w", "2"), server_env(database_url), port) as server:
        async with logged_in_browser(server.url) as alice:
            await alice.client.post("/auth/logout", data={"csrf_token": alice.token})
        # A stranger's browser: never logged in as alice, so the per-username limit applies.
        async with httpx.AsyncClient(base_url=server.url, timeout=10, verify=TLS) as stranger:
            token = csrf_token_of((await stranger.get("/auth/login")).text)
            cookie = "; ".join(f"{k}={v}" for k, v in stranger.cookies.items())
        release = asyncio.Event()
        wrong = [
            asyncio.create_task(guess(server, cookie, token, f"wrong {n}", release))
            for n in range(GUESSES)
        ]
        await asyncio.sleep(1)  # every request is in, but its last byte
        release.set()
        answers = await asyncio.gather(*wrong)
        # The right password, once the burst is answered: refused while the username is locked.
        right = await guess(server, cookie, token, CREDENTIALS["password"], release)
        server.stop()
        log = server.output()
    statuses = [status for status, _ in answers]
    verified = [a for status, a in answers if "Incorrect username or password." in a]
    print(f"{GUESSES} released together: {len(verified)} verified, {statuses.count(429)} x 429")
    assert len(verified) <= LIMIT
    assert statuses.count(429) == GUESSES - len(verified)
    assert statuses.count(200) == len(verified)
    assert right[0] == 429
    assert re.search(r"(?i)retry-after: \d+", right[1])
    # Every password check of a wrong guess is logged: none was verified without a reservation.
    assert log.count('Failed login for username "alice"') == len(verified)


def browser_from(url: str, address: str) -> httpx.AsyncClient:
    """Return a client whose connections come from one loopback address."""
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=TLS)
    return httpx.AsyncClient(base_url=url, timeout=10, transport=transport)


async def login_status(client: httpx.AsyncClient, password: str) -> int:
    """Load the login form, post alice's name with a password; return the status."""
    token = csrf_token_of((await client.get("/auth/login")).text)
    form = {"username": "alice", "password": password, "csrf_token": token}
    return (await client.post("/auth/login", data=form)).status_code


async def test_failures_from_elsewhere_never_lock_out_a_known_browser(database_url: str) -> None:
    port = free_port()
    with running(hypercorn_command(port), server_env(database_url), port) as server:
        async with logged_in_browser(server.url) as alice:  # from 127.0.0.1: now a known browser
            await alice.client.post("/auth/logout", data={"csrf_token": alice.token})
            async with browser_from(server.url, "127.0.0.2") as attacker:
                statuses = [await login_status(attacker, f"guess {n}") for n in range(50)]
                assert statuses == [200] * 10 + [429] * 40
                assert await login_status(attacker, CREDENTIALS["password"]) == 429
            assert await login_status(alice.client, CREDENTIALS["password"]) == 302
        # A new browser: from another address it may try; from the attacker's it may not.
        async with browser_from(server.url, "127.0.0.3") as elsewhere:
            assert await login_status(elsewhere, CREDENTIALS["password"]) == 302
        async with browser_from(server.url, "127.0.0.2") as beside_the_attacker:
            assert await login_status(beside_the_attacker, CREDENTIALS["password"]) == 429
