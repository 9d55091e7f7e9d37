"""The command-line tools on every backend: init-db asks before dropping; failures are one line."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from flaskr_async import create_app
from flaskr_async.db import commands
from flaskr_async.db import opened
from flaskr_async.db.migrations.registry import known_migrations
from flaskr_async.db.migrations.registry import schema_file_version
from flaskr_async.db.postgres import redacted
from tests.db.test_migrations import make_legacy
from tests.servers import free_port
from tests.servers import server_env

STEPS = known_migrations()
QUART = Path(sys.executable).with_name("quart")  # the console script beside this interpreter


def invoke(config: dict[str, Any], *args: str, answer: str | None = None) -> Result:
    """Run one command of the app in this process, standard input not a terminal."""
    result: Result = create_app(config).test_cli_runner().invoke(args=list(args), input=answer)
    return result


def counts(config: dict[str, Any]) -> tuple[int, int]:
    """Return how many users and posts the database holds, re-read through the seam."""

    async def read() -> tuple[int, int]:
        async with opened(config, pool_size=1) as database:
            return await commands.count_rows(database)

    return asyncio.run(read())


def add_user_and_posts(config: dict[str, Any], posts: int = 2) -> None:
    """Store one user with a few posts, straight through the seam."""

    async def write() -> None:
        async with opened(config, pool_size=1) as database:
            async with database.transaction() as tx:
                await tx.execute("INSERT INTO \"user\" (username, password) VALUES ('a', 'b')")
                for n in range(posts):
                    await tx.execute(
                        "INSERT INTO post (title, body, author_id) VALUES (?, '', 1)", (str(n),)
                    )

    asyncio.run(write())


@pytest.fixture
def config(app_config: dict[str, Any]) -> dict[str, Any]:
    """Return the settings of the test app, with the defaults a command sees."""
    return dict(create_app(app_config).config)


def test_init_db_on_an_empty_database_asks_nothing(config: dict[str, Any]) -> None:
    result = invoke(config, "init-db")
    assert result.exit_code == 0, result.output
    assert result.output == "Initialized the database.\n"
    assert counts(config) == (0, 0)


def test_init_db_off_a_terminal_refuses_to_drop_data(config: dict[str, Any]) -> None:
    add_user_and_posts(config)
    result = invoke(config, "init-db")
    assert result.exit_code == 1
    assert result.output == (
        "Error: The database holds 1 user and 2 posts, which init-db would drop. Run it on a"
        " terminal to be asked, pass --yes to drop them, or use --if-missing to keep them.\n"
    )
    assert counts(config) == (1, 2)


def test_init_db_yes_drops_data_without_asking(config: dict[str, Any]) -> None:
    add_user_and_posts(config)
    result = invoke(config, "init-db", "--yes")
    assert result.exit_code == 0, result.output
    assert result.output == "Initialized the database.\n"
    assert counts(config) == (0, 0)


@pytest.mark.parametrize(
    ("answer", "exit_code", "last_line", "left"),
    [
        ("y\n", 0, "Initialized the database.", (0, 0)),
        ("n\n", 1, "Aborted!", (1, 1)),
        ("\n", 1, "Aborted!", (1, 1)),  # the default is no
    ],
)
def test_init_db_on_a_terminal_asks_first(
    config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    exit_code: int,
    last_line: str,
    left: tuple[int, int],
) -> None:
    add_user_and_posts(config, posts=1)
    monkeypatch.setattr(commands, "stdin_is_a_terminal", lambda: True)
    result = invoke(config, "init-db", answer=answer)
    assert result.exit_code == exit_code, result.output
    prompt, *_, last = result.output.splitlines()
    assert prompt.startswith("Drop 1 user and 1 post and create empty tables? [y/N]: ")
    assert last == last_line
    assert counts(config) == left


def test_init_db_if_missing_keeps_rows(config: dict[str, Any]) -> None:
    add_user_and_posts(config)
    result = invoke(config, "init-db", "--if-missing")
    assert result.exit_code == 0, result.output
    newest = schema_file_version()
    assert result.output == f"The database is at schema version {newest}, the newest.\n"
    assert counts(config) == (1, 2)


@pytest.mark.parametrize("before", ["none", "newest", "version 4"])
async def test_init_db_if_missing_says_what_it_did(
    config: dict[str, Any], backend: str, before: str
) -> None:
    """It said only "at the newest" after making a brand-new database, or migrating one."""
    newest = schema_file_version()
    said = {
        "none": [f"New database made at schema version {newest}."],
        "newest": [],
        "version 4": [
            "Database without schema versions recognised as version 4.",
            *(f"Schema migration {step.version} ({step.name}) applied." for step in STEPS[4:]),
        ],
    }
    if before == "newest":
        await asyncio.to_thread(add_user_and_posts, config)
    elif before == "version 4":
        await make_legacy(backend, config["DATABASE"], 4)
    result = await asyncio.to_thread(invoke, config, "init-db", "--if-missing")
    assert result.exit_code == 0, result.output
    last = f"The database is at schema version {newest}, the newest."
    assert result.output.splitlines() == [*said[before], last]


def test_backup_writes_a_copy(tmp_path: Path, config: dict[str, Any]) -> None:
    add_user_and_posts(config)
    target = tmp_path / "copy.backup"
    result = invoke(config, "backup", str(target))
    assert result.exit_code == 0, result.output
    # The source named: run inside a clone, the database is the clone's.
    source = redacted(config["DATABASE"])
    assert result.output == f"Backed up the database {source} to {target}.\n"
    assert target.stat().st_size > 0


def unusable_database(backend: str, tmp_path: Path) -> str:
    """Return a DATABASE setting of the backend that cannot be opened."""
    if backend == "postgresql":
        return f"postgresql://flaskr@127.0.0.1:{free_port()}/flaskr"  # nothing listens there
    return str(tmp_path / "no-such-folder" / "flaskr.sqlite")


# Each command's expected failures: (arguments, with {tmp} for the test's folder, the error).
FAILURES = {
    "backup, no folder": (["backup", "{tmp}/gone/copy"], "There is no folder {tmp}/gone: create"),
    "backup, folder is a file": (["backup", "{tmp}/file/copy"], "There is no folder {tmp}/file:"),
    "backup, target exists": (["backup", "{tmp}/file"], "{tmp}/file already exists: back up to"),
    "backup, target is a folder": (["backup", "{tmp}"], "{tmp} already exists: back up to"),
    # sysfs refuses new files even to root, whose permission checks pass everywhere else.
    "backup, unwritable": (["backup", "/sys/copy"], "Cannot write /sys/copy: Permission denied."),
    "backup, no database": (["backup", "{tmp}/copy"], "Cannot use DATABASE"),
    "init-db, no database": (["init-db"], "Cannot use DATABASE"),
    "init-db --yes, no database": (["init-db", "--yes"], "Cannot use DATABASE"),
    "init-db --if-missing, no database": (["init-db", "--if-missing"], "Cannot use DATABASE"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_expected_failures_are_one_error_line(
    config: dict[str, Any],
    backend: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    (tmp_path / "file").write_text("")
    args, message = FAILURES[case]
    if "no database" in case:
        config = {**config, "DATABASE": unusable_database(backend, tmp_path)}
    result = invoke(config, *(arg.format(tmp=tmp_path) for arg in args))
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: " + message.format(tmp=tmp_path)), result.output
    # Nor is the error logged: with no logging configured, that would print it a second time.
    assert not caplog.records
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]  # no file left behind


@pytest.mark.postgresql_only
def test_backup_without_pg_dump_is_one_error_line(
    config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = invoke(config, "backup", str(tmp_path / "copy"))
    assert result.exit_code == 1
    assert result.output == "Error: Backing up PostgreSQL needs pg_dump on the PATH.\n"


# The real console script, in its own process: what a person at a terminal sees.


def quart_command(*args: str) -> list[str]:
    """Return the `quart --app flaskr_async ...` command line."""
    return [str(QUART), "--app", "flaskr_async", *args]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("database", ["{tmp}/flaskr.sqlite", "{tmp}/gone/flaskr.sqlite"])
def test_the_console_script_prints_one_line_not_a_traceback(tmp_path: Path, database: str) -> None:
    env = server_env(database.format(tmp=tmp_path))
    done = subprocess.run(
        quart_command("backup", str(tmp_path / "gone" / "copy")),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"Error: There is no folder {tmp_path}/gone: create it first.\n"
    unusable = subprocess.run(
        quart_command("init-db"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert unusable.returncode == (1 if "gone" in database else 0)
    assert len(unusable.stdout.splitlines() + unusable.stderr.splitlines()) == 1


def read_until(descriptor: int, text: str, deadline: float = 20) -> str:
    """Read a terminal's output until it shows ``text``."""
    seen = ""
    stop_at = time.monotonic() + deadline
    while text not in seen:
        assert time.monotonic() < stop_at, f"no {text!r} in {seen!r}"
        seen += os.read(descriptor, 1024).decode()
    return seen


@pytest.mark.sqlite_only
def test_init_db_asks_at_a_real_terminal(config: dict[str, Any], tmp_path: Path) -> None:
    add_user_and_posts(config, posts=3)
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            quart_command("init-db"),
            cwd=tmp_path,
            env=server_env(config["DATABASE"]),
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
        )
        read_until(controller, "Drop 1 user and 3 posts and create empty tables? [y/N]: ")
        os.write(controller, b"n\n")
        assert "Aborted!" in read_until(controller, "Aborted!")
        assert process.wait(20) == 1
    finally:
        os.close(controller)
        os.close(terminal)
    assert counts(config) == (1, 3)
