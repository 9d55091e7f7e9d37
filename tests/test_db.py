"""The SQLite backend and the seam: lifecycle, leases, transactions, commands."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing.app import LifespanError

from flaskr_async import create_app
from flaskr_async.db import DatabaseUnavailable
from flaskr_async.db import IntegrityError
from flaskr_async.db import current_database
from flaskr_async.db import get_db
from flaskr_async.db.sqlite import SQLiteDatabase
from flaskr_async.db.sqlite import database_path


def count_posts(path: str) -> int:
    """Count the posts in a database file, read with plain sqlite3."""
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM post").fetchone()[0])
    finally:
        connection.close()


async def test_get_db_is_one_lease_per_request(app: Quart) -> None:
    async with app.test_request_context("/"):
        db = await get_db()
        assert db is await get_db()
        assert current_database().idle.qsize() == app.config["DATABASE_POOL_SIZE"] - 1  # type: ignore[attr-defined]
    assert current_database_of(app).idle.qsize() == app.config["DATABASE_POOL_SIZE"]


def current_database_of(app: Quart) -> SQLiteDatabase:
    """Return the SQLite pool of a serving app."""
    database: SQLiteDatabase = app.extensions["flaskr_async.db"]
    return database


async def test_connections_close_on_shutdown(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    async with app.test_app():
        database = current_database_of(app)
        raw = database.connections[0].raw
    assert not database.connections
    with pytest.raises(ValueError, match="no active connection"):
        await raw.execute("SELECT 1")
    assert not Path(app_config["DATABASE"] + "-wal").exists()


async def test_connection_settings(app: Quart) -> None:
    async with current_database_of(app).lease() as db:
        assert (await db.fetch_one("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]
        assert (await db.fetch_one("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
        assert (await db.fetch_one("PRAGMA synchronous"))[0] == 1  # type: ignore[index]
        assert (await db.fetch_one("PRAGMA busy_timeout"))[0] == 5000  # type: ignore[index]
        post = await db.fetch_one("SELECT created FROM post")
    assert post is not None
    assert post["created"] == datetime(2018, 1, 1, tzinfo=UTC)


async def test_serving_creates_missing_tables(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    async with app.test_app():
        async with current_database_of(app).lease() as db:
            rows = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert {"user", "post", "login_failure"} <= {row["name"] for row in rows}


async def test_serving_keeps_existing_rows(app: Quart, app_config: dict[str, Any]) -> None:
    again = create_app(app_config)
    async with again.test_app():
        pass
    assert count_posts(app_config["DATABASE"]) == 1


async def test_failed_transaction_rolls_back(app: Quart) -> None:
    database = current_database_of(app)
    async with database.lease() as db:
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.execute("DELETE FROM post")
                raise RuntimeError("the request failed after writing")
        assert not db.raw.in_transaction
        assert len(await db.fetch_all("SELECT id FROM post")) == 1


async def test_integrity_error_is_backend_neutral(app: Quart) -> None:
    async with current_database_of(app).lease() as db:
        with pytest.raises(IntegrityError):
            async with db.transaction():
                await db.execute(
                    'INSERT INTO "user" (username, password) VALUES (?, ?)', ("test", "x")
                )


async def test_cancelled_write_leaves_no_row_and_no_transaction(app: Quart) -> None:
    database = current_database_of(app)
    inserted = asyncio.Event()

    async def write_then_hang() -> None:
        async with database.lease() as db, db.transaction():
            await db.execute("INSERT INTO post (title, body, author_id) VALUES ('orphan', '', 1)")
            inserted.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(write_then_hang())
    await inserted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for connection in database.connections:
        assert not connection.raw.in_transaction
    async with database.lease() as db:
        async with db.transaction():
            await db.execute("INSERT INTO post (title, body, author_id) VALUES ('next', '', 1)")
        titles = [row["title"] for row in await db.fetch_all("SELECT title FROM post")]
    assert titles == ["test title", "next"]


async def test_lease_rolls_back_a_transaction_left_open(app: Quart) -> None:
    database = current_database_of(app)
    async with database.lease() as db:
        db.may_be_in_transaction = True
        await db.execute("BEGIN IMMEDIATE")
        await db.execute("DELETE FROM post")
    async with database.lease() as db:
        assert len(await db.fetch_all("SELECT id FROM post")) == 1


async def test_leases_are_exclusive(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "DATABASE_POOL_SIZE": 1})
    async with app.test_app():
        database = current_database_of(app)
        async with database.lease():
            waiting = asyncio.create_task(database.lease().__aenter__())
            await asyncio.sleep(0.05)
            assert not waiting.done()
        connection = await waiting
        database.idle.put_nowait(connection)


@pytest.mark.parametrize("make_unusable", ["directory", "missing_parent", "corrupt"])
async def test_unusable_database_fails_startup_loudly(
    tmp_path: Path, app_config: dict[str, Any], make_unusable: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flaskr.sqlite"
    if make_unusable == "directory":
        path.mkdir()
    elif make_unusable == "missing_parent":
        path = tmp_path / "no" / "such" / "flaskr.sqlite"
    else:
        path.write_bytes(b"this is not a database" * 100)
    app = create_app({**app_config, "DATABASE": str(path)})
    with pytest.raises(LifespanError, match="Cannot use DATABASE"):
        async with app.test_app():
            pass  # pragma: no cover - start-up fails
    assert f"Cannot use DATABASE {str(path)!r}" in caplog.text


def test_bad_synchronous_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS"):
        SQLiteDatabase(str(tmp_path / "x"), pool_size=1, busy_timeout=1, synchronous="SOMETIMES")


def test_sqlite_url() -> None:
    assert database_path("sqlite:////var/lib/flaskr.sqlite") == "/var/lib/flaskr.sqlite"
    assert database_path("instance/flaskr.sqlite") == "instance/flaskr.sqlite"


def test_init_db_command(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "Initialized the database." in result.output
    assert count_posts(app_config["DATABASE"]) == 0


def test_init_db_drops_old_rows(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    runner = app.test_cli_runner()
    runner.invoke(args=["init-db"])
    connection = sqlite3.connect(app_config["DATABASE"])
    with connection:
        connection.execute("INSERT INTO user (username, password) VALUES ('a', 'b')")
        connection.execute("INSERT INTO post (title, body, author_id) VALUES ('t', 'b', 1)")
    connection.close()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    assert count_posts(app_config["DATABASE"]) == 0


def test_command_reports_unusable_database(tmp_path: Path, app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "DATABASE": str(tmp_path)})
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 1
    assert f"Cannot use DATABASE {str(tmp_path)!r}" in result.output


def test_backup_command(tmp_path: Path, app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    runner = app.test_cli_runner()
    runner.invoke(args=["init-db"])
    target = tmp_path / "copy.sqlite"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    assert f"Backed up the database to {target}." in result.output
    again = runner.invoke(args=["backup", str(target)])
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_database_unavailable_is_a_runtime_error() -> None:
    assert issubclass(DatabaseUnavailable, RuntimeError)
