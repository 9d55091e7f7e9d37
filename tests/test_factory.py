"""The application factory: configuration sources, instance folder, several apps at once."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing.app import LifespanError

from flaskr_async import create_app
from flaskr_async.accounts.passwords import HASH_SLOTS_KEY
from flaskr_async.db import current_database
from tests.helpers import load_test_data
from tests.helpers import serving
from tests.servers import ROOT
from tests.servers import TEST_SECRET_KEY


@pytest.fixture
def instance_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give every app built in the test a temporary instance folder, and no FLASKR_ setting."""
    folder = tmp_path / "instance"
    monkeypatch.setattr(Quart, "auto_find_instance_path", lambda self: str(folder))
    for name in [name for name in os.environ if name.startswith("FLASKR_")]:
        monkeypatch.delenv(name)
    return folder


def test_config(instance_path: Path) -> None:
    """Flask's own test of Flaskr's factory, as it is written there (issue 26)."""
    assert not create_app().testing
    assert create_app({"TESTING": True}).testing


async def test_serving_refuses_the_development_key_before_anything_opens(
    instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app()
    assert app.config["SECRET_KEY"] == "dev"
    with pytest.raises(LifespanError, match="SECRET_KEY = 'dev' \\(the development default\\)"):
        async with app.test_app():
            pass  # pragma: no cover - start-up fails
    assert not (instance_path / "flaskr.sqlite").exists()  # refused before the database
    # One line, as create_app's refusals: Quart's traceback of it is dropped.
    shown = [record for record in caplog.records if logging.getLogger(app.name).filter(record)]
    assert [(record.levelname, record.exc_info) for record in shown] == [("ERROR", None)]
    assert (
        shown[0]
        .getMessage()
        .startswith(
            "Start-up failed: SECRET_KEY = 'dev' (the development default) is invalid: must be a"
            f" random key of at least 32 bytes, not 'dev': set it in {instance_path / 'config.py'}"
        )
    )


@pytest.mark.parametrize("relaxed", ["DEBUG", "TESTING"])
async def test_debug_and_testing_serve_with_the_development_key(
    instance_path: Path, tmp_path: Path, relaxed: str
) -> None:
    app = create_app({relaxed: True, "DATABASE": str(tmp_path / "flaskr.sqlite")})
    async with app.test_app():
        response = await app.test_client().get("/hello")
    assert response.status_code == 200


def test_defaults(instance_path: Path) -> None:
    app = create_app({"TESTING": True})
    assert app.config["SECRET_KEY"] == "dev"
    assert app.config["DATABASE"] == str(instance_path / "flaskr.sqlite")
    assert app.config["POSTS_PER_PAGE"] == 20


def test_instance_folder_is_created(instance_path: Path) -> None:
    assert not instance_path.exists()
    create_app({"TESTING": True})
    assert instance_path.is_dir()


def test_an_instance_folder_that_cannot_be_created_is_tolerated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No one, root included, creates folders in /proc: a read-only install, as root sees it.
    folder = "/proc/flaskr_async-instance"
    monkeypatch.setattr(Quart, "auto_find_instance_path", lambda self: folder)
    app = create_app({"TESTING": True})
    assert app.instance_path == folder
    assert not Path(folder).exists()


def test_instance_config_is_read_unless_testing(instance_path: Path) -> None:
    instance_path.mkdir()
    (instance_path / "config.py").write_text(
        f"POSTS_PER_PAGE = 7\nSECRET_KEY = {TEST_SECRET_KEY!r}\n"
    )
    assert create_app().config["POSTS_PER_PAGE"] == 7
    assert create_app({"TESTING": True}).config["POSTS_PER_PAGE"] == 20


def test_prefixed_environment_comes_last(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASKR_POSTS_PER_PAGE", "5")
    monkeypatch.setenv("FLASKR_SECRET_KEY", "from-the-environment")
    app = create_app({"TESTING": True, "POSTS_PER_PAGE": 9, "SECRET_KEY": "from-test-config"})
    assert app.config["POSTS_PER_PAGE"] == 5
    assert app.config["SECRET_KEY"] == "from-the-environment"


def test_create_app_opens_nothing(tmp_path: Path) -> None:
    database = tmp_path / "not-yet" / "flaskr.sqlite"
    create_app({"TESTING": True, "DATABASE": str(database)})
    assert not database.parent.exists()


async def test_hello(client: Any) -> None:
    response = await client.get("/hello")
    assert await response.get_data(as_text=True) == "Hello, World!"


async def test_blueprint_hook_runs_when_serving(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "PASSWORD_HASH_CONCURRENCY": 3})
    assert HASH_SLOTS_KEY not in app.extensions
    async with app.test_app():
        limit = app.extensions[HASH_SLOTS_KEY]
        assert isinstance(limit, asyncio.Semaphore)
        assert limit._value == 3


@pytest.mark.sqlite_only
async def test_two_apps_serve_side_by_side(tmp_path: Path, app_config: dict[str, Any]) -> None:
    first = create_app({**app_config, "DATABASE": str(tmp_path / "first.sqlite")})
    second = create_app({**app_config, "DATABASE": str(tmp_path / "second.sqlite")})
    async with first.test_app(), second.test_app():
        await load_test_data(first)
        await load_test_data(second)
        for app, title in ((first, "only in first"), (second, "only in second")):
            client = app.test_client()
            await client.post("/auth/login", form={"username": "test", "password": "test"})
            response = await client.post("/create", form={"title": title, "body": ""})
            assert response.status_code == 302
        first_page = await (await first.test_client().get("/")).get_data(as_text=True)
        assert "only in first" in first_page and "only in second" not in first_page
    for name, title in (("first", "only in first"), ("second", "only in second")):
        with closing(sqlite3.connect(tmp_path / f"{name}.sqlite")) as connection:
            titles = {row[0] for row in connection.execute("SELECT title FROM post")}
        assert titles == {"test title", title}


@pytest.mark.parametrize(("hops", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
async def test_proxy_fix_sets_the_client_address(
    app_config: dict[str, Any], hops: int, expected: str
) -> None:
    async with serving({**app_config, "PROXY_FIX_TRUSTED_HOPS": hops}) as app:
        client = app.test_client()
        await client.post(
            "/auth/login",
            form={"username": "test", "password": "wrong"},
            headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
            scope_base={"client": ("127.0.0.1", 5000)},
        )
        async with app.app_context():
            row = await current_database().fetch_one("SELECT address FROM login_attempt")
    assert row is not None
    assert row["address"] == expected


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("flaskr_async/live/__init__.py", "live"),
        ("flaskr_async/live/sources.py", "live_sources"),
        ("flaskr_async/serving/command.py", "__main__"),
        ("flaskr_async/db/__init__.py", "__init__"),
        ("flaskr_async/auth.py", "auth"),
        ("elsewhere/live/__init__.py", "__init__"),
    ],
)
def test_log_lines_keep_the_module_names_of_the_flat_layout(
    tmp_path: Path, path: str, module: str
) -> None:
    create_app({"TESTING": True, "DATABASE": str(tmp_path / "db.sqlite")})
    record = logging.LogRecord("flaskr_async", logging.INFO, str(ROOT / path), 1, "m", (), None)
    assert logging.getLogger("flaskr_async").filter(record)
    assert record.module == module


async def test_the_live_index_logs_in_live_as_before(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(app_config):
        pass
    stopped = [record for record in caplog.records if record.getMessage() == "Live index stopped"]
    assert [record.module for record in stopped] == ["live"]
