"""The PostgreSQL backend itself: SQL translation, schema from many hosts, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from quart.testing.app import LifespanError

from flaskr_async import create_app
from flaskr_async.db import DatabaseUnavailable
from flaskr_async.db import opened
from flaskr_async.db.postgres import PostgresDatabase
from flaskr_async.db.postgres import numbered_placeholders
from flaskr_async.db.postgres import redacted
from tests.servers import free_port


def test_placeholders_are_numbered() -> None:
    assert numbered_placeholders("SELECT 1") == "SELECT 1"
    assert (
        numbered_placeholders("UPDATE post SET title = ?, body = ? WHERE id = ?")
        == "UPDATE post SET title = $1, body = $2 WHERE id = $3"
    )


def test_passwords_are_redacted() -> None:
    assert redacted("postgresql://app:s3cret@db:5432/flaskr") == "postgresql://app@db:5432/flaskr"
    assert redacted("postgresql://db/flaskr") == "postgresql://db/flaskr"


@pytest.mark.postgresql_only
async def test_schema_from_several_hosts_at_once(app_config: dict[str, Any]) -> None:
    config = create_app(app_config).config

    async def start_and_reset() -> None:
        async with opened(config, pool_size=1) as database:
            await database.reset_schema()

    # Every host creates (or recreates) the schema on start-up; the advisory lock
    # makes them take turns instead of failing on each other's half-made tables.
    await asyncio.gather(*(start_and_reset() for _ in range(6)))
    async with opened(config, pool_size=1) as database, database.lease() as db:
        assert await db.fetch_all('SELECT * FROM "user"') == []


@pytest.mark.postgresql_only
async def test_pool_closes_on_shutdown(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    async with app.test_app():
        database: PostgresDatabase = app.extensions["flaskr_async.db"]
        pool = database.pool
        assert pool is not None
    assert database.pool is None
    assert pool.is_closing()


async def test_unreachable_server_fails_startup_loudly(
    postgres_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://flaskr:s3cret@127.0.0.1:{free_port()}/flaskr"
    app = create_app({"TESTING": True, "DATABASE": url})
    with pytest.raises(LifespanError, match="Cannot use DATABASE"):
        async with app.test_app():
            pass  # pragma: no cover - start-up fails
    assert "postgresql://flaskr@127.0.0.1" in caplog.text
    assert "s3cret" not in caplog.text


async def test_backup_reports_pg_dump_failure(
    postgres_server: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command checks the folder first; the seam still refuses alike, and reports what
    # pg_dump says, leaving no partial copy.
    config = create_app({"TESTING": True, "DATABASE": postgres_server}).config
    async with opened(config, pool_size=1) as database:
        with pytest.raises(DatabaseUnavailable, match="Cannot back up to .*No such file"):
            await database.backup(str(tmp_path / "no" / "such" / "folder" / "copy"))
        (tmp_path / "taken").write_text("")
        with pytest.raises(DatabaseUnavailable, match="already exists"):
            await database.backup(str(tmp_path / "taken"))
        tools = tmp_path / "bin"
        tools.mkdir()
        (tools / "pg_dump").write_text(
            "#!/bin/sh\necho partial\necho 'pg_dump: error: down' >&2\nexit 1\n"
        )
        (tools / "pg_dump").chmod(0o755)
        monkeypatch.setenv("PATH", str(tools))
        with pytest.raises(DatabaseUnavailable, match="^pg_dump failed: pg_dump: error: down$"):
            await database.backup(str(tmp_path / "copy"))
    assert not (tmp_path / "copy").exists()
