"""Helpers the tests share: test data, a served app, pages, cookies, forms and rows."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator
from collections.abc import Iterator
from contextlib import asynccontextmanager
from contextlib import closing
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quart import Quart
from quart import Response as TestResponse
from quart.testing import QuartClient
from quart.typing import TestClientProtocol

from flaskr_async import create_app
from flaskr_async.accounts.login_sessions import id_hash
from flaskr_async.db import Row
from flaskr_async.db import current_database
from flaskr_async.db.schema import split_statements

DATA_SQL = (Path(__file__).parent / "data.sql").read_text()

# The password "test" as Flaskr's tutorial stored it (werkzeug's pbkdf2), and as werkzeug's
# generate_password_hash stores it by default today (scrypt).
WERKZEUG_HASHES = {
    "pbkdf2": "pbkdf2:sha256:50000$TCI4GzcX$"
    "0de171a4f4dac32e3364c7ddc7c14f3e2fa61f2d17574483f7ffbb431b4acb2f",
    "scrypt": "scrypt:32768:8:1$5zHUCQ4i70cvWAg9$4474884302b9722bf202cd18c991a834363d0c21aa93a5b8"
    "31a8662d00186c3d8492af22b04be7174bf837357c61457a8af1c86f8478678e6998c50b7c22bc6a",
}


@contextmanager
def private_sqlite(path: str | Path) -> Iterator[sqlite3.Connection]:
    """Open a SQLite file with the driver alone, made owner-only if new (the app refuses 0644)."""
    Path(path).touch(mode=0o600)
    with closing(sqlite3.connect(path)) as connection:
        yield connection


async def load_test_data(app: Quart) -> None:
    """Insert the fixture rows through the seam of the serving app."""
    async with app.app_context():
        async with current_database().lease() as db, db.transaction():
            for statement in split_statements(DATA_SQL):
                await db.execute(statement)


@asynccontextmanager
async def serving(config: dict[str, Any]) -> AsyncIterator[Quart]:
    """Serve an app (lifespan included) on a database holding the fixture rows."""
    app = create_app(config)
    async with app.test_app():
        await load_test_data(app)
        yield app


# Every state-changing form: (path, valid fields, whether it needs a logged-in user).
STATE_CHANGING_FORMS = {
    "register": ("/auth/register", {"username": "new", "password": "a-long-password"}, False),
    "login": ("/auth/login", {"username": "test", "password": "test"}, False),
    "logout": ("/auth/logout", {}, True),
    "create": ("/create", {"title": "created", "body": "b"}, True),
    "update": ("/1/update", {"title": "updated", "body": "b"}, True),
    "delete": ("/1/delete", {}, True),
}


async def fetch_one(app: Quart, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
    """Run one query through the serving app's database seam."""
    async with app.app_context():
        async with current_database().lease() as db:
            return await db.fetch_one(sql, params)


def failure_rows(count: int, username: str, address: str, age: float = 0) -> list[tuple[Any, ...]]:
    """Return failed-login rows made ``age`` seconds ago, from browsers unknown to the user."""
    return [(username, address, time.time() - age)] * count


async def add_failures(app: Quart, rows: list[tuple[Any, ...]]) -> None:
    """Record failed logins directly, as earlier requests would have."""
    async with app.app_context():
        async with current_database().transaction() as tx:
            for row in rows:
                await tx.execute(
                    "INSERT INTO login_attempt (username, address, attempted_at) VALUES (?, ?, ?)",
                    row,
                )


async def row_count(app: Quart, table: str) -> int:
    """Count a table's rows, re-read from the database."""
    row = await fetch_one(app, f'SELECT count(*) AS n FROM "{table}"')
    assert row is not None
    return int(row["n"])


# app.test_client() is typed as the protocol; the client fixture as Quart's own class.
AnyClient = QuartClient | TestClientProtocol


class AuthActions:
    """Log the test client in and out."""

    def __init__(self, client: AnyClient) -> None:
        self.client = client

    async def login(self, username: str = "test", password: str = "test") -> TestResponse:
        """Post the login form."""
        return await self.client.post(
            "/auth/login", form={"username": username, "password": password}
        )

    async def logout(self) -> TestResponse:
        """Post the logout form."""
        return await self.client.post("/auth/logout")


async def page_text(response: TestResponse) -> str:
    """Return a response body as text."""
    return await response.get_data(as_text=True)


def set_cookie_of(response: TestResponse, name: str = "session") -> str:
    """Return the Set-Cookie header a response gives for one cookie."""
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, f"expected one Set-Cookie for {name!r}, got {headers}"
    return headers[0]


def csrf_token_of(page: str) -> str:
    """Return the CSRF token rendered in a page's forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


async def logged_in_as(app: Quart, client: QuartClient) -> int | None:
    """Return the id of the user whose session the client holds, if any."""
    async with client.session_transaction() as current:
        session_id = current.get("session_id")
    if session_id is None:
        return None
    row = await fetch_one(
        app, "SELECT user_id FROM user_session WHERE id_hash = ?", (id_hash(session_id),)
    )
    return None if row is None else int(row["user_id"])
