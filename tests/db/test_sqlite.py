"""The SQLite backend itself: pragmas, files, WAL, failures at start-up."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from quart import Quart
from quart.testing.app import LifespanError

from flaskr_async import create_app
from flaskr_async.db import DatabaseUnavailable
from flaskr_async.db.sqlite import SQLiteDatabase
from flaskr_async.db.sqlite import database_path

pytestmark = pytest.mark.sqlite_only


def sqlite_of(app: Quart) -> SQLiteDatabase:
    """Return the SQLite pool of a serving app."""
    database: SQLiteDatabase = app.extensions["flaskr_async.db"]
    return database


async def test_connection_settings(app: Quart) -> None:
    async with sqlite_of(app).lease() as db:
        for pragma, expected in [
            ("journal_mode", "wal"),
            ("foreign_keys", 1),
            ("synchronous", 1),  # NORMAL
            ("busy_timeout", 5000),
        ]:
            row = await db.fetch_one(f"PRAGMA {pragma}")
            assert row is not None
            assert row[0] == expected, pragma


async def test_synchronous_is_configurable(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "SQLITE_SYNCHRONOUS": "full"})
    async with app.test_app():
        async with sqlite_of(app).lease() as db:
            row = await db.fetch_one("PRAGMA synchronous")
    assert row is not None
    assert row[0] == 2


async def test_connections_close_on_shutdown(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    async with app.test_app():
        database = sqlite_of(app)
        raw = database.connections[0].raw
        assert Path(app_config["DATABASE"] + "-wal").exists()
    assert not database.connections
    with pytest.raises(ValueError, match="no active connection"):
        await raw.execute("SELECT 1")
    # The last connection to close checkpoints the WAL into the database and removes it.
    assert not Path(app_config["DATABASE"] + "-wal").exists()


async def test_failed_transaction_leaves_no_transaction_open(app: Quart) -> None:
    async with sqlite_of(app).lease() as db:
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.execute("DELETE FROM post")
                raise RuntimeError("failed after writing")
        assert not db.raw.in_transaction
        assert not db.may_be_in_transaction


async def test_lease_rolls_back_a_transaction_left_open(app: Quart) -> None:
    database = sqlite_of(app)
    async with database.lease() as db:
        db.may_be_in_transaction = True
        await db.execute("BEGIN IMMEDIATE")
        await db.execute("DELETE FROM post")
    async with database.lease() as db:
        assert len(await db.fetch_all("SELECT id FROM post")) == 1
        assert not db.raw.in_transaction


@pytest.mark.parametrize("make_unusable", ["directory", "missing_parent", "corrupt"])
async def test_unusable_database_fails_startup_loudly(
    tmp_path: Path,
    app_config: dict[str, Any],
    make_unusable: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "flaskr.sqlite"
    if make_unusable == "directory":
        path.mkdir()
    elif make_unusable == "missing_parent":
        path = tmp_path / "no" / "such" / "flaskr.sqlite"
    else:
        path.write_bytes(b"this is not a database" * 100)
        path.chmod(0o600)  # owner-only, or it is refused before SQLite ever reads it
    app = create_app({**app_config, "DATABASE": str(path)})
    with pytest.raises(LifespanError, match="Cannot use DATABASE"):
        async with app.test_app():
            pass  # pragma: no cover - start-up fails
    assert f"Cannot use DATABASE {str(path)!r}" in caplog.text
    if make_unusable == "corrupt":
        assert "file is not a database" in caplog.text


def test_bad_synchronous_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS"):
        SQLiteDatabase(str(tmp_path / "x"), pool_size=1, busy_timeout=1, synchronous="SOMETIMES")


def test_sqlite_url() -> None:
    assert database_path("sqlite:////var/lib/flaskr.sqlite") == "/var/lib/flaskr.sqlite"
    assert database_path("instance/flaskr.sqlite") == "instance/flaskr.sqlite"


async def test_sqlite_url_serves(tmp_path: Path, app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "DATABASE": f"sqlite:///{tmp_path / 'url.sqlite'}"})
    async with app.test_app():
        pass
    assert (tmp_path / "url.sqlite").exists()


def test_command_reports_unusable_database(tmp_path: Path, app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "DATABASE": str(tmp_path)})
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 1
    assert f"Cannot use DATABASE {str(tmp_path)!r}" in result.output


async def test_backup_failures_are_database_unavailable(app: Quart, tmp_path: Path) -> None:
    # The command checks the target first; the seam refuses alike (for a target made since, a
    # full disk), so no caller sees a raw sqlite3 error.
    with pytest.raises(DatabaseUnavailable, match="Cannot back up to .*No such file or directory"):
        await sqlite_of(app).backup(str(tmp_path / "gone" / "copy.sqlite"))
    (tmp_path / "taken").write_text("")
    with pytest.raises(DatabaseUnavailable, match="already exists"):
        await sqlite_of(app).backup(str(tmp_path / "taken"))


async def test_a_cancelled_backup_leaves_no_partial_copy(app: Quart, tmp_path: Path) -> None:
    target = tmp_path / "copy.sqlite"
    backup = asyncio.create_task(sqlite_of(app).backup(str(target)))
    while not target.exists():
        await asyncio.sleep(0)
    backup.cancel()
    with pytest.raises(asyncio.CancelledError):
        await backup
    assert not target.exists()
    # Nor does the copy reappear: the connection's thread had finished with it.
    async with sqlite_of(app).lease() as db:
        await db.fetch_one("SELECT 1")
    assert not target.exists()


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    """Return an error as SQLite's C module raises it, with its result code."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def failing_wal_switch(
    monkeypatch: pytest.MonkeyPatch, error: tuple[str, int], times: int
) -> list[str]:
    """Make the first ``times`` WAL switches fail with the error; return the failed tries."""
    real_execute: Any = aiosqlite.Connection._execute  # untyped: aiosqlite internal
    tries: list[str] = []

    async def execute(
        self: aiosqlite.Connection, function: Any, sql: Any = None, *args: Any
    ) -> Any:
        if sql == "PRAGMA journal_mode = WAL" and len(tries) < times:
            tries.append(sql)
            raise sqlite_error(*error)  # a new one each time, as SQLite raises them
        return await real_execute(self, function, *(() if sql is None else (sql,)), *args)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", execute)
    return tries


BUSY = ("database is locked", sqlite3.SQLITE_BUSY)
IO_ERROR = ("disk I/O error", sqlite3.SQLITE_IOERR)


# Seen when eight processes started on a new file: one opening while the last closed got
# SQLITE_BUSY at once, without the busy handler's wait. Injected here, as it is a race.
@pytest.mark.parametrize(
    ("error", "times", "refused", "tried"),
    [
        (BUSY, 3, None, range(3, 4)),  # retried, then opens
        (BUSY, 1000, "database is locked", range(10, 1000)),  # for about the busy timeout
        (IO_ERROR, 1000, "disk I/O error", range(1, 2)),  # any other error: at once
    ],
    ids=["busy briefly", "busy past the timeout", "another error"],
)
async def test_opening_retries_only_while_the_file_is_busy(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: tuple[str, int],
    times: int,
    refused: str | None,
    tried: range,
) -> None:
    tries = failing_wal_switch(monkeypatch, error, times)
    database = SQLiteDatabase(
        str(tmp_path / "busy.sqlite"), pool_size=1, busy_timeout=0.2, synchronous="NORMAL"
    )
    if refused is None:
        await database.open()
        await database.close()
    else:
        with pytest.raises(DatabaseUnavailable, match=refused):
            await database.open()
    assert len(tries) in tried
