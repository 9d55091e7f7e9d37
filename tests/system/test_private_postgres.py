"""The tests' private PostgreSQL server: a run killed from outside leaves none running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from tests.postgres_server import FOLDER_PREFIX
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
    # The killed run's temporary folder is its own: the other Pythons' suites, running now,
    # stop what they find abandoned in theirs. Short, for the server's socket path; open to
    # the server's user.
    root = Path(tempfile.mkdtemp(prefix="fpg-"))
    root.chmod(0o755)
    try:
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_RUN],
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(root)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        (left,) = root.glob(FOLDER_PREFIX + "*")
        url = killed.stdout.strip()
        assert await answers(url), f"the killed run's server at {url} is not running"

        removed = stop_abandoned_servers(pg_ctl, root)  # as the next run starting its own does

        assert removed == [left] and not left.exists()
        assert not await answers(url)
        # The server of a run still going (this one's) is left alone.
        assert await answers(postgres_server)
    finally:
        stop_abandoned_servers(pg_ctl, root)
        shutil.rmtree(root, ignore_errors=True)
