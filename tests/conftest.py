"""Fixtures: an app serving a fresh database file per test, its client, and login helpers."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart import Response as TestResponse
from quart.testing import QuartClient

from flaskr_async import create_app
from flaskr_async.db import current_database
from flaskr_async.db.sqlite import split_statements
from tests.servers import TEST_SECRET_KEY

DATA_SQL = (Path(__file__).parent / "data.sql").read_text()


@pytest.fixture
def app_config(tmp_path: Path) -> dict[str, Any]:
    """Return the settings of the test app: its own database file, no files read."""
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE": str(tmp_path / "flaskr.sqlite"),
        # CSRF has its own tests; the Flaskr tests post bare forms.
        "WTF_CSRF_ENABLED": False,
    }


async def load_test_data(app: Quart) -> None:
    """Insert the fixture rows through the seam of the serving app."""
    async with app.app_context():
        async with current_database().lease() as db, db.transaction():
            for statement in split_statements(DATA_SQL):
                await db.execute(statement)


@pytest.fixture
async def app(app_config: dict[str, Any]) -> AsyncIterator[Quart]:
    """Serve an app (lifespan included) on a database holding the fixture rows."""
    app = create_app(app_config)
    async with app.test_app():
        await load_test_data(app)
        yield app


@pytest.fixture
def client(app: Quart) -> QuartClient:
    """Return a test client of the serving app."""
    test_client = app.test_client()
    assert isinstance(test_client, QuartClient)
    return test_client


class AuthActions:
    """Log the test client in and out."""

    def __init__(self, client: QuartClient) -> None:
        self.client = client

    async def login(self, username: str = "test", password: str = "test") -> TestResponse:
        """Post the login form."""
        return await self.client.post(
            "/auth/login", form={"username": username, "password": password}
        )

    async def logout(self) -> TestResponse:
        """Post the logout form."""
        return await self.client.post("/auth/logout")


@pytest.fixture
def auth(client: QuartClient) -> AuthActions:
    """Return login helpers bound to the client."""
    return AuthActions(client)


async def page_text(response: TestResponse) -> str:
    """Return a response body as text."""
    return await response.get_data(as_text=True)


def csrf_token_of(page: str) -> str:
    """Return the CSRF token rendered in a page's forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


def database_threads() -> list[threading.Thread]:
    """Return the live aiosqlite worker threads."""
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


@pytest.fixture(autouse=True)
def no_database_thread_left() -> Iterator[None]:
    """Fail a test that leaves an aiosqlite connection (and its thread) open."""
    before = set(database_threads())
    yield
    deadline = time.monotonic() + 2
    while (leaked := set(database_threads()) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked, f"aiosqlite connections left open: {leaked}"
