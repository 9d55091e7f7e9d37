"""The tests' private PostgreSQL server: a run killed from outside leaves none running."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

import asyncpg
import pytest

from tests.postgres_server import FOLDER_PREFIX
from tests.postgres_server import OWNER
from tests.postgres_server import find_tool
from tests.postgres_server import stop_abandoned_servers
from tests.servers import ROOT

# A test run that starts its server, then is killed as a CI timeout or kill -9 would kill it.
KILLED_RUN = """
import os, signal
from tests.postgres_server import private_postgres
with private_postgres() as url:
    print(url, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def folder_of(pid: int) -> Path:
    """Return the folder of the private server the process ``pid`` started."""
    for folder in Path(tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
        with suppress(OSError):  # another run's, being made or removed now
            if (folder / OWNER).read_text() == str(pid):
                return folder
    raise AssertionError(f"no server folder owned by process {pid}")


async def answers(url: str) -> bool:
    """Tell whether a PostgreSQL server answers at the URL."""
    try:
        connection = await asyncpg.connect(url, timeout=5)
    except OSError:
        return False
    await connection.close()
    return True


async def test_the_next_run_stops_the_server_a_killed_run_left(postgres_server: str) -> None:
    pg_ctl = find_tool("pg_ctl")
    if pg_ctl is None:  # TEST_DATABASE_URL names a server elsewhere, and none is installed here
        pytest.skip("pg_ctl not found: no private server can be started on this machine")
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output, errors = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, errors
    # Other runs (the other Pythons' suites) make and remove theirs meanwhile.
    left = folder_of(killed.pid)
    url = output.strip()
    assert await answers(url), f"the killed run's server at {url} is not running"

    stop_abandoned_servers(pg_ctl)  # as the next run starting its own server does

    assert not left.exists()
    assert not await answers(url)
    # The server of a run still going (this one's) is left alone.
    assert await answers(postgres_server)
