"""A private PostgreSQL server for the test session, started and stopped by the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import suppress
from pathlib import Path

import asyncpg

from tests.servers import free_port
from tests.servers import refuse_unless_system

DEBIAN_BIN = Path("/usr/lib/postgresql")


def find_tool(name: str) -> str | None:
    """Find a PostgreSQL server tool on the PATH or in Debian's versioned folders."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(DEBIAN_BIN.glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def as_server_user(command: list[str]) -> list[str]:
    """Run a server tool as an unprivileged user: initdb and postgres refuse root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "nobody", "--", *command]


def run_quietly(command: list[str]) -> None:
    """Run a server tool as the server user, failing if it fails."""
    subprocess.run(
        as_server_user(command),
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


FOLDER_PREFIX = "flaskr-pg-"
OWNER = "owner.pid"  # in each server's folder: the process of the test run that started it


def alive(pid: int) -> bool:
    """Tell whether a process with this id exists (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def server_runs_on(data: Path) -> bool:
    """Tell whether a PostgreSQL server runs on a data folder.

    postmaster.pid can outlive its server (an OOM kill, a restart with /tmp kept) and its id
    be another process's since: the server is the process whose working folder is ``data``.
    """
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        running_in = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError, IndexError):
        return False
    return Path(running_in) == data.resolve()


def stop_abandoned_servers(pg_ctl: str, root: Path | None = None) -> list[Path]:
    """Stop and remove the private servers whose test run was killed before it could stop them.

    A run killed from outside (kill -9, a CI timeout) leaves its server running, and each such
    server holds its memory and a port until the machine restarts. A folder (in ``root``, the
    temporary folder by default) whose owner process is gone is stopped (immediate mode:
    nothing in it is kept) and removed; a folder without an owner yet is being made by a run
    starting now, and a live owner is still using its server. Return the folders removed.
    """
    removed = []
    for folder in (root or Path(tempfile.gettempdir())).glob(FOLDER_PREFIX + "*"):
        try:
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if alive(owner):
            continue
        data = folder / "data"
        if server_runs_on(data):
            # Best effort: a server that will not stop is left, and this run starts its own.
            with suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                    timeout=60,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@contextmanager
def private_postgres() -> Iterator[str]:
    """Start PostgreSQL in a temporary folder on loopback; yield the admin URL."""
    refuse_unless_system("PostgreSQL started")
    initdb, pg_ctl = find_tool("initdb"), find_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise FileNotFoundError("initdb/pg_ctl not found (install Debian's postgresql package)")
    stop_abandoned_servers(pg_ctl)
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    (folder / OWNER).write_text(str(os.getpid()))
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
    data, port = folder / "data", free_port()
    try:
        run_quietly([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"])
        # Durability is not under test here: fsync off makes each test's database quick.
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        log = str(folder / "log")
        run_quietly([pg_ctl, "-D", str(data), "-o", options, "-l", log, "-w", "start"])
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run_quietly([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """Return the server URL pointing at another database."""
    base, _, query = url.partition("?")
    server = base.rsplit("/", 1)[0]
    return f"{server}/{name}" + (f"?{query}" if query else "")


async def run_as_admin(server: str, statement: str) -> None:
    """Run one statement on the server's admin database."""
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """Yield the URL of a new, empty database on the server, dropped after the block."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    asyncio.run(run_as_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server, name)
    finally:
        asyncio.run(run_as_admin(server, f'DROP DATABASE "{name}" WITH (FORCE)'))
