"""The app runs unchanged under each ASGI server: lifespan, reads, writes, a clean stop."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import csrf_token_of
from tests.servers import TLS
from tests.servers import Server
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env
from tests.servers import stored_titles
from tests.servers import tables_in


def uvicorn_command(port: int) -> list[str]:
    """Return the command that serves ``asgi:app`` with uvicorn on loopback."""
    return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "asgi:app"]


def granian_command(port: int) -> list[str]:
    """Return the command that serves ``asgi:app`` with granian on loopback."""
    # granian's default interface is its own RSGI; asgi runs the lifespan too.
    return [
        *(sys.executable, "-m", "granian", "--interface", "asgi"),
        *("--host", "127.0.0.1", "--port", str(port), "asgi:app"),
    ]


# Each server's command and its exit status after a graceful SIGTERM shutdown. uvicorn
# (since 0.29) re-raises the signal once it has shut down, as a process stopped by a signal
# is expected to: its clean exit is "killed by SIGTERM" after the lifespan has completed.
SERVERS: dict[str, tuple[Callable[[int], list[str]], int]] = {
    "hypercorn": (hypercorn_command, 0),
    "uvicorn": (uvicorn_command, -signal.SIGTERM),
    "granian": (granian_command, 0),
}


def submit(client: httpx.Client, path: str, form: dict[str, str]) -> httpx.Response:
    """Load a form page, then post the form with its CSRF token."""
    token = csrf_token_of(client.get(path).text)
    return client.post(path, data={**form, "csrf_token": token})


def write_and_read(server: Server) -> None:
    """Register, log in and post through the forms, then read the post on the index."""
    credentials = {"username": "asgi", "password": "a long enough password"}
    with httpx.Client(base_url=server.url, timeout=5, verify=TLS) as client:
        assert submit(client, "/auth/register", credentials).headers["location"] == "/auth/login"
        assert submit(client, "/auth/login", credentials).headers["location"] == "/"
        created = submit(client, "/create", {"title": "served unchanged", "body": "same app"})
        assert created.headers["location"] == "/"
        index = client.get("/")
    assert index.status_code == 200
    assert "served unchanged" in index.text
    assert "asgi" in index.text  # the session cookie came back: the nav shows the user


@pytest.mark.parametrize("name", SERVERS)
def test_the_app_runs_unchanged_under(name: str, tmp_path: Path) -> None:
    command, clean_exit = SERVERS[name]
    database = tmp_path / "flaskr.sqlite"
    wal = database.with_name(database.name + "-wal")
    port = free_port()
    with running(command(port), server_env(database), port) as server:
        # The lifespan ran before the first request: the tables exist, the database is open.
        assert {"user", "post"} <= tables_in(database)
        assert wal.exists()
        write_and_read(server)
        assert server.stop(timeout=10) == clean_exit
        output = server.output()
    opened = output.find(f"Database opened: {database}")
    assert opened >= 0, output
    assert output.find(f"Database closed: {database}", opened) > opened, output
    # The last connection's close checkpointed the log away: the shutdown hook ran to the end.
    assert not wal.exists()
    assert asyncio.run(stored_titles(database)) == ["served unchanged"]
