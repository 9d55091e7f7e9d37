"""Flaskr's own flow on a fresh clone: no instance config, no key, then serving is refused."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT
from tests.servers import TLS
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import start

QUART = str(Path(sys.executable).with_name("quart"))
KEY_REFUSED = (
    "Start-up failed: SECRET_KEY = 'dev' (the development default) is invalid: must be a random"
    " key of at least 32 bytes, not 'dev': set it in {instance}/config.py (SECRET_KEY = \"...\")"
    " or the environment (FLASKR_SECRET_KEY)"
)


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    """Copy the package and asgi.py into a folder with no instance folder, as a fresh clone is."""
    shutil.copytree(
        ROOT / "flaskr_async",
        tmp_path / "flaskr_async",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "asgi.py", tmp_path / "asgi.py")
    yield tmp_path


def clone_env(clone: Path) -> dict[str, str]:
    """Return an environment with no FLASKR_ setting that imports the copy, not this tree."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
    return {**env, "PYTHONPATH": str(clone)}


def run_in(clone: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command to its end in the clone."""
    return subprocess.run(
        command,
        cwd=clone,
        env=clone_env(clone),
        capture_output=True,
        text=True,
        timeout=60,
        umask=0o022,  # the usual one: the database must still be the owner's alone
    )


def test_flask_s_own_checks_pass_without_any_configuration(clone: Path) -> None:
    """Flask's test_config and the tutorial's first look at the factory, in a fresh process."""
    check = "from flaskr_async import create_app; assert not create_app().testing; "
    check += "print(create_app().instance_path)"
    done = run_in(clone, sys.executable, "-c", check)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{clone / 'instance'}\n"
    assert done.stderr == ""


def test_init_db_then_the_development_server_then_serving_without_a_key_is_refused(
    clone: Path,
) -> None:
    instance = clone / "instance"
    done = run_in(clone, QUART, "--app", "flaskr_async", "init-db")
    assert (done.returncode, done.stdout, done.stderr) == (0, "Initialized the database.\n", "")
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE((instance / "flaskr.sqlite").stat().st_mode) == 0o600

    # The development server serves with Flaskr's "dev" key.
    port = free_port()
    command = [QUART, "--app", "flaskr_async", "run", "--debug", "--port", str(port)]
    with running(command, clone_env(clone), port, cwd=clone) as server:
        assert httpx.get(server.url + "/", verify=TLS).status_code == 200

    # Any server outside debug refuses it before the first request, with one line.
    refused = KEY_REFUSED.format(instance=instance)
    port = free_port()
    server = start(hypercorn_command(port), clone_env(clone), port, cwd=clone)
    assert server.process.wait(30) == 0  # hypercorn 0.18 drops its worker's status (#269)
    output = server.output()
    assert output.strip().startswith(refused), output
    assert "Traceback" not in output

    # The same check runs in the app's start-up, whatever loads it: the line, then the server's.
    port = free_port()
    factory = [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}"]
    server = start([*factory, "flaskr_async:create_app()"], clone_env(clone), port, cwd=clone)
    assert server.process.wait(30) == 0
    assert f"ERROR in __init__: {refused}" in server.output()

    # The serve command writes a key on its first run instead, and serves (tests/serving).
    assert not (instance / "config.py").exists()


@pytest.mark.parametrize(
    ("command", "status"),
    [
        # uvicorn's status 3: "Application startup failed. Exiting."
        ([sys.executable, "-m", "uvicorn", "--factory", "flaskr_async:create_app"], 3),
        ([QUART, "--app", "flaskr_async", "run"], 1),
    ],
    ids=["uvicorn", "quart run"],
)
def test_other_servers_refuse_the_development_key_at_start_up(
    clone: Path, command: list[str], status: int
) -> None:
    port = free_port()
    server = start([*command, "--port", str(port)], clone_env(clone), port, cwd=clone)
    assert server.process.wait(30) == status
    output = server.output()
    assert KEY_REFUSED.format(instance=clone / "instance") in output
    assert not (clone / "instance" / "flaskr.sqlite").exists()  # refused before the database
    assert "Traceback" not in output  # the one line (quart run printed 85 of hypercorn's)
