"""Development mode: the debug server reloads on code changes; tracebacks only when debugging."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import NoReturn

import httpx
import pytest
from quart import Quart

from flaskr_async import create_app
from tests.servers import ROOT
from tests.servers import TEST_SECRET_KEY
from tests.servers import TLS
from tests.servers import free_port
from tests.servers import running
from tests.servers import server_env

QUART = Path(sys.executable).with_name("quart")  # the console script beside this interpreter
HELLO = 'return "Hello, World!"'
# An upper bound, not a wait: Quart looks for changes every second, but a loaded machine
# has been seen to take over 10 s to start the new process.
RELOAD_DEADLINE = 60


def copy_of_the_package(directory: Path) -> Path:
    """Copy the package into a directory that can be edited freely; return its __init__.py."""
    shutil.copytree(
        ROOT / "flaskr_async",
        directory / "flaskr_async",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (directory / "instance").mkdir()
    return directory / "flaskr_async" / "__init__.py"


def wait_for_text(url: str, text: str, deadline: float) -> None:
    """Poll a URL until its body is ``text``; connection errors mean a restart is under way."""
    stop_at = time.monotonic() + deadline
    body = None
    while time.monotonic() < stop_at:
        try:
            body = httpx.get(url, timeout=1, verify=TLS).text
        except httpx.TransportError:
            body = None
        if body == text:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} still says {body!r}, not {text!r}, after {deadline} s")


@pytest.mark.system
def test_quart_run_debug_reloads_quietly_on_a_code_change(tmp_path: Path) -> None:
    init = copy_of_the_package(tmp_path)
    assert HELLO in init.read_text()
    database = tmp_path / "flaskr.sqlite"
    env = server_env(database)
    # The copy, not the editable install of the work tree, is imported.
    env["PYTHONPATH"] = str(tmp_path)
    port = free_port()
    command = [str(QUART), "--app", "flaskr_async", "run", "--debug", "--port", str(port)]
    # From the copy's folder: `--app flaskr_async` must import the copy, not the work tree.
    with running(command, env, port, cwd=tmp_path) as server:
        wait_for_text(server.url + "/hello", "Hello, World!", RELOAD_DEADLINE)
        # A connection still open (a request half sent) when the reload cancels its task.
        with socket.create_connection(("127.0.0.1", port)) as pending:
            pending.sendall(b"GET /hello HTTP/1.1\r\n")
            init.write_text(init.read_text().replace(HELLO, 'return "Hello, reloaded!"'))
            wait_for_text(server.url + "/hello", "Hello, reloaded!", RELOAD_DEADLINE)
        # As systemd or `kill -TERM -PGID` would: Quart 0.23 serves from a child of the
        # reloader, which SIGTERM kills outright, so the signal must reach the child too.
        # The parent's status is not checked for that reason; the output shows the child's.
        os.killpg(server.process.pid, signal.SIGTERM)
        output = server.output()  # read until every process of the group has closed its end
    assert " * Debug mode: True" in output
    assert "Traceback" not in output and "Error" not in output, output
    # The reload closed the database before the new process opened it; the stop closed it too.
    events = re.findall(rf"Database (opened|closed): {re.escape(str(database))}$", output, re.M)
    assert events == ["opened", "closed", "opened", "closed"], output


@pytest.fixture
def restore_logger_level() -> Iterator[None]:
    """Undo the level a serving app (DEBUG when debugging) sets on the shared logger."""
    logger = logging.getLogger("flaskr_async")
    level = logger.level
    yield
    logger.setLevel(level)


def failing_app(tmp_path: Path, **config: Any) -> Quart:
    """Create a serving-mode app (not TESTING) with a route that raises."""
    app = create_app(
        {"SECRET_KEY": TEST_SECRET_KEY, "DATABASE": str(tmp_path / "flaskr.sqlite"), **config}
    )

    @app.route("/boom")
    async def boom() -> NoReturn:
        raise RuntimeError("the secret detail of a bug")

    return app


async def test_production_500_is_plain_and_the_error_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, restore_logger_level: None
) -> None:
    app = failing_app(tmp_path)
    assert not app.debug and not app.testing
    async with app.test_app():
        response = await app.test_client().get("/boom")
    page = await response.get_data(as_text=True)
    assert response.status_code == 500
    assert "<title>500 Internal Server Error - Flaskr</title>" in page  # the site's error page
    assert "Traceback" not in page and "the secret detail" not in page
    assert "RuntimeError" not in page
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "Exception on request GET /boom"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


async def test_debug_mode_shows_the_traceback(tmp_path: Path, restore_logger_level: None) -> None:
    app = failing_app(tmp_path, DEBUG=True)
    assert app.debug
    async with app.test_app():
        response = await app.test_client().get("/boom")
    page = await response.get_data(as_text=True)
    assert response.status_code == 500
    assert "RuntimeError" in page and "the secret detail of a bug" in page
    assert "raise RuntimeError" in page  # the failing source line, from the traceback


@pytest.mark.system
def test_quart_run_in_the_clone_finds_the_app_without_app_option(tmp_path: Path) -> None:
    """The README's `quart run --debug`, without --app: .quartenv names the app."""
    env = server_env(tmp_path / "flaskr.sqlite")
    env.pop("QUART_APP", None)
    port = free_port()
    command = [str(QUART), "run", "--debug", "--port", str(port)]
    with running(command, env, port, cwd=ROOT) as server:
        assert httpx.get(server.url + "/hello", verify=TLS).text == "Hello, World!"
        os.killpg(server.process.pid, signal.SIGTERM)  # the reloader's child too
        output = server.output()
    assert " * Serving Quart app 'flaskr_async'" in output
    assert "Traceback" not in output


BAD_PAGE_SIZE = (
    "FLASKR_POSTS_PER_PAGE = 'abc' is invalid: must be a positive integer (at most 2147483647),"
    " written as JSON, e.g. FLASKR_POSTS_PER_PAGE='20'"
)
WEAK_KEY = "SECRET_KEY = '<redacted, 5 bytes>' (from FLASKR_SECRET_KEY)"


@pytest.mark.system
@pytest.mark.parametrize(
    ("command", "settings", "error"),
    [
        # create_app refuses a setting before the command runs: click's one Error line.
        (["init-db", "--if-missing"], {"POSTS_PER_PAGE": "abc"}, f"Error: {BAD_PAGE_SIZE}"),
        (["backup", "{tmp}/copy"], {"POSTS_PER_PAGE": "abc"}, f"Error: {BAD_PAGE_SIZE}"),
        (["run", "--port", "{port}"], {"POSTS_PER_PAGE": "abc"}, f"Error: {BAD_PAGE_SIZE}"),
        # Serving refuses a weak key when it starts: the app's line, then status 1.
        (["run", "--port", "{port}"], {"SECRET_KEY": "short"}, f"Start-up failed: {WEAK_KEY}"),
    ],
)
def test_the_quart_command_fails_in_one_line(
    tmp_path: Path, command: list[str], settings: dict[str, str], error: str
) -> None:
    """Not a traceback of 34 lines (a bad setting) or 85 (quart run's refused start-up)."""
    port = str(free_port())
    arguments = [part.format(tmp=tmp_path, port=port) for part in command]
    done = subprocess.run(
        [str(QUART), "--app", "flaskr_async", *arguments],
        cwd=tmp_path,
        env=server_env(tmp_path / "flaskr.sqlite", **settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    # Besides `quart run`'s banner (" * Serving Quart app ...", " * Running on ...").
    lines = [line for line in done.stderr.splitlines() if not line.startswith(" * ")]
    assert len(lines) == 1, done.stderr
    assert error in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_refused_start_up_under_run_exits_1_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process: app.run (what `quart run` calls) turns hypercorn's failure into status 1."""
    app = create_app({"SECRET_KEY": "short", "DATABASE": str(tmp_path / "flaskr.sqlite")})
    with pytest.raises(SystemExit) as stopped:
        # Without the reloader: Quart 0.23's runs the process's own command line again
        # (here pytest) until it exits with status 3.
        app.run(port=free_port(), use_reloader=False)
    assert stopped.value.code == 1
    assert stopped.value.__suppress_context__  # the LifespanFailureError is not shown
    assert " * Running on http://127.0.0.1:" in capsys.readouterr().out
    assert not (tmp_path / "flaskr.sqlite").exists()  # refused before the database opened
