"""Run the app in a real server process on loopback, for the tests that need one."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import closing
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-to-serve"
ARTIFACTS = ROOT / "test-artifacts"  # screenshots, git-ignored
# Each new httpx client (each httpx.get, too) loads the CA bundle into a TLS context of its
# own: about 20 ms of CPU, a thousand times a run. The servers here speak plain HTTP, so
# their clients share this one context (verify=TLS), loaded once.
TLS = httpx.create_ssl_context()


# Whether the running test may start a real server (conftest.py sets it for each test: only
# tests marked system may). True outside pytest: the benchmarks start servers too.
may_start_servers = True


def refuse_unless_system(what: str) -> None:
    """Raise if a test not marked system starts a real process, keeping the fast run fast."""
    if not may_start_servers:
        raise RuntimeError(
            f"{what} in a test not marked system: move it to tests/system/ or mark it"
            " @pytest.mark.system (pytest -m 'not system' runs without such tests)"
        )


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out for bind(0) is also
# the next client socket's, and a busy suite opens thousands of those, so one could take a
# server's port between this check and the server's own bind. `make test` runs a suite per
# Python side by side and gives each its own part of the range (TEST_SERVER_PORTS, noxfile.py):
# two suites never pick the same port, which hypercorn's SO_REUSEPORT (two workers or more)
# would even let both servers bind, each then getting half of the other's connections.
SERVER_PORTS = range(20000, 32768)
# Its own generator: Hypothesis seeds the shared one.
port_picker = random.SystemRandom()
handed_out: deque[int] = deque(maxlen=256)  # not yet bound, maybe: `free_port(), free_port()`


def server_ports() -> range:
    """Return the ports this suite may serve on: TEST_SERVER_PORTS ("first-last"), or all.

    Under pytest-xdist (make test-fast), each worker takes its own part of them.
    """
    first, _, last = os.environ.get("TEST_SERVER_PORTS", "").partition("-")
    ports = range(int(first), int(last) + 1) if last else SERVER_PORTS
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker:
        return ports
    share = len(ports) // workers
    return ports[int(worker) * share : (int(worker) + 1) * share]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 outside the ephemeral range that nothing is bound to now."""
    ports = server_ports()
    while True:
        port = port_picker.choice(ports)
        if port in handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another test's server
        handed_out.append(port)
        return port


def server_env(database: Path | str, **settings: str) -> dict[str, str]:
    """Return an environment that points the app at a database, over plain HTTP."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
    env.update(
        FLASKR_DATABASE=str(database),
        FLASKR_SECRET_KEY=TEST_SECRET_KEY,
        # The tests talk plain HTTP to 127.0.0.1; a Secure cookie would never come back.
        FLASKR_SESSION_COOKIE_SECURE="false",
    )
    env.update({f"FLASKR_{key}": value for key, value in settings.items()})
    return env


class Server:
    """A server process started by the tests, and its base URL."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self, timeout: float = 15) -> int:
        """Send SIGTERM to the server and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the server and its worker processes, as a crash or OOM kill would."""
        # hypercorn serves from a worker child even with one worker: killing only the
        # parent would leave the worker serving.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def output(self) -> str:
        """Return what the stopped server wrote to stdout and stderr."""
        out, _ = self.process.communicate(timeout=15)
        return out.decode(errors="replace")


def wait_until_serving(server: Server, deadline: float = 20) -> None:
    """Poll /hello until it answers, failing if the process exits first."""
    wait_until_answering(server.url, server.output, lambda: server.process.poll() is None, deadline)


def wait_until_answering(
    url: str, output: Callable[[], str], alive: Callable[[], bool], deadline: float = 20
) -> None:
    """Poll ``url``/hello until it answers; fail with the server's ``output`` once not ``alive``."""
    stop_at = time.monotonic() + deadline
    with httpx.Client(timeout=1, verify=TLS) as client:
        while time.monotonic() < stop_at:
            if not alive():
                raise RuntimeError(f"server exited early:\n{output()}")
            try:
                if client.get(url + "/hello").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
    raise TimeoutError(f"server did not answer within {deadline} s")


def start(
    command: Sequence[str],
    env: dict[str, str],
    port: int,
    host: str = "127.0.0.1",
    cwd: Path = ROOT,
) -> Server:
    """Start a server process (from the project root by default), without waiting for it."""
    refuse_unless_system(f"{command[-1]!r} started")
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so kill() reaches the workers
    )
    return Server(process, f"http://{host}:{port}")


def hypercorn_command(
    port: int, *options: str, host: str = "127.0.0.1", python: str = sys.executable
) -> list[str]:
    """Return the command that serves ``asgi:app`` with hypercorn on a loopback address."""
    return [python, "-m", "hypercorn", "--bind", f"{host}:{port}", *options, "asgi:app"]


@contextmanager
def running(
    command: Sequence[str],
    env: dict[str, str],
    port: int,
    host: str = "127.0.0.1",
    cwd: Path = ROOT,
) -> Iterator[Server]:
    """Serve for the block; the server is stopped (SIGTERM, then SIGKILL) however it ends."""
    server = start(command, env, port, host, cwd)
    failed = True
    try:
        wait_until_serving(server)
        yield server
        failed = False
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(15)
        server.kill()  # whatever is left of the group, workers of a killed parent included
        if failed and server.process.stdout is not None and not server.process.stdout.closed:
            # A failed test shows what its server logged (pytest prints captured output).
            log = server.process.stdout.read().decode(errors="replace")
            print(f"--- the server's log ---\n{log}")
        if server.process.stdout is not None:
            server.process.stdout.close()


def tables_in(database: Path) -> set[str]:
    """Return the names of the tables in a SQLite file."""
    with closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def backend_of(database: str | Path) -> str:
    """Name the backend a DATABASE setting selects, as the app's create_database does."""
    return "postgresql" if str(database).startswith(("postgresql://", "postgres://")) else "sqlite"


async def stored_titles(database: str | Path) -> list[str]:
    """Read every post title straight from the database (a PostgreSQL URL or a SQLite file)."""
    if backend_of(database) == "postgresql":
        connection = await asyncpg.connect(str(database))
        try:
            return [row["title"] for row in await connection.fetch("SELECT title FROM post")]
        finally:
            await connection.close()
    with closing(sqlite3.connect(database)) as connection:
        return [row[0] for row in connection.execute("SELECT title FROM post")]


async def stored_ids(database: str | Path) -> dict[str, int]:
    """Read every post's id by its title straight from the database."""
    sql = "SELECT title, id FROM post"
    if backend_of(database) == "postgresql":
        connection = await asyncpg.connect(str(database))
        try:
            return {row["title"]: row["id"] for row in await connection.fetch(sql)}
        finally:
            await connection.close()
    with closing(sqlite3.connect(database)) as connection:
        return dict(connection.execute(sql).fetchall())
