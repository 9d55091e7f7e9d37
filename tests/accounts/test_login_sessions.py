"""Login sessions end on the server: logout, idle timeout, lifetime, rotation; no shared caching."""

from __future__ import annotations

import time
from typing import Any

import pytest
from quart import Quart

from flaskr_async.accounts.login_sessions import id_hash
from flaskr_async.db import current_database
from tests.helpers import AnyClient
from tests.helpers import AuthActions
from tests.helpers import fetch_one
from tests.helpers import page_text
from tests.helpers import row_count
from tests.helpers import serving
from tests.helpers import set_cookie_of


async def session_id_of(client: AnyClient) -> str:
    """Return the login session id in the client's cookie."""
    async with client.session_transaction() as current:
        session_id: str = current["session_id"]
    return session_id


async def run(app: Quart, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement through the serving app's seam."""
    async with app.app_context():
        await current_database().execute(sql, params)


async def is_logged_in(client: AnyClient) -> bool:
    """Tell whether the index shows the client a logged-in user."""
    return "Log Out" in await page_text(await client.get("/"))


async def test_a_cookie_replayed_after_logout_is_anonymous(
    app: Quart, client: AnyClient, auth: AuthActions
) -> None:
    await auth.login()
    saved = set_cookie_of(await auth.login()).split(";")[0]
    await auth.logout()
    replay = app.test_client()
    assert "Log In" in await page_text(await replay.get("/", headers={"Cookie": saved}))
    create = await replay.post(
        "/create", form={"title": "as the old session", "body": ""}, headers={"Cookie": saved}
    )
    assert create.headers["Location"] == "/auth/login"
    assert await row_count(app, "user_session") == 0


@pytest.mark.parametrize(
    ("column", "age", "ended"),
    [
        ("last_seen_at", 24 * 3600 + 60, True),  # unused for longer than SESSION_IDLE_TIMEOUT
        ("last_seen_at", 24 * 3600 - 60, False),
        ("created_at", 14 * 24 * 3600 + 60, True),  # older than PERMANENT_SESSION_LIFETIME
        ("created_at", 14 * 24 * 3600 - 60, False),
    ],
)
async def test_sessions_expire_on_the_server(
    app: Quart, client: AnyClient, auth: AuthActions, column: str, age: float, ended: bool
) -> None:
    await auth.login()
    await run(app, f"UPDATE user_session SET {column} = ?", (time.time() - age,))
    assert await is_logged_in(client) is not ended
    if ended:  # the browser's cookie is emptied too
        async with client.session_transaction() as current:
            assert "session_id" not in current


async def test_use_keeps_a_session_alive_with_one_write_a_minute(
    app: Quart, client: AnyClient, auth: AuthActions
) -> None:
    await auth.login()
    key = id_hash(await session_id_of(client))
    await run(app, "UPDATE user_session SET last_seen_at = ?", (time.time() - 30,))
    await client.get("/")
    row = await fetch_one(app, "SELECT last_seen_at FROM user_session WHERE id_hash = ?", (key,))
    assert row is not None and time.time() - row["last_seen_at"] > 29  # not rewritten yet
    await run(app, "UPDATE user_session SET last_seen_at = ?", (time.time() - 90,))
    await client.get("/")
    row = await fetch_one(app, "SELECT last_seen_at FROM user_session WHERE id_hash = ?", (key,))
    assert row is not None and time.time() - row["last_seen_at"] < 5


async def test_login_rotates_the_session_and_clears_ended_ones(
    app: Quart, client: AnyClient, auth: AuthActions
) -> None:
    await auth.login()
    first = await session_id_of(client)
    other = app.test_client()
    await AuthActions(other).login("other", "other")
    await run(app, "UPDATE user_session SET last_seen_at = 0 WHERE id_hash <> ?", (id_hash(first),))
    await auth.login()
    second = await session_id_of(client)
    assert second != first
    stored = await fetch_one(
        app, "SELECT count(*) AS n FROM user_session WHERE id_hash = ?", (id_hash(second),)
    )
    assert stored is not None and stored["n"] == 1
    # The first session was replaced, the other user's ended one deleted at this login.
    assert await row_count(app, "user_session") == 1


async def test_the_table_stores_no_usable_session_id(
    app: Quart, client: AnyClient, auth: AuthActions
) -> None:
    await auth.login()
    session_id = await session_id_of(client)
    row = await fetch_one(app, "SELECT id_hash FROM user_session")
    assert row is not None and session_id not in row["id_hash"]


async def test_a_forged_session_id_is_anonymous(app: Quart, client: AnyClient) -> None:
    async with client.session_transaction() as planted:
        planted["session_id"] = "guessed"
    assert not await is_logged_in(client)


async def test_deleting_a_user_ends_their_sessions(
    app: Quart, client: AnyClient, auth: AuthActions
) -> None:
    await auth.login()
    await run(app, 'DELETE FROM "user" WHERE id = 1')
    assert await row_count(app, "user_session") == 0
    assert not await is_logged_in(client)


@pytest.mark.parametrize("path", ["/", "/create", "/1/update", "/no/such/page", "/auth/login"])
async def test_logged_in_pages_are_never_stored(
    client: AnyClient, auth: AuthActions, path: str
) -> None:
    await auth.login()
    assert (await client.get(path)).headers["Cache-Control"] == "no-store"


async def test_pages_with_a_session_token_stay_private(client: AnyClient) -> None:
    assert (await client.get("/auth/login")).headers["Cache-Control"] == "private"


@pytest.mark.parametrize("path", ["/static/style.css", "/static/favicon.svg", "/hello"])
async def test_static_files_and_hello_never_set_a_cookie(
    client: AnyClient, auth: AuthActions, path: str
) -> None:
    await auth.login()
    response = await client.get(path)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers.get("Cache-Control") != "no-store"


async def test_a_logged_in_page_sets_no_cookie_either(client: AnyClient, auth: AuthActions) -> None:
    # The cookie keeps its expiry from login: it is not re-sent with every page (the first
    # page after login adds the new session's CSRF token to it, once).
    await auth.login()
    await client.get("/")
    assert "Set-Cookie" not in (await client.get("/")).headers


async def test_idle_timeout_is_a_setting(app_config: dict[str, Any]) -> None:
    async with serving({**app_config, "SESSION_IDLE_TIMEOUT": 60}) as app:
        client = app.test_client()
        await AuthActions(client).login()
        await run(app, "UPDATE user_session SET last_seen_at = ?", (time.time() - 61,))
        assert not await is_logged_in(client)


async def test_logging_out_without_a_session_is_harmless(app: Quart) -> None:
    client = app.test_client()
    response = await client.post("/auth/logout")
    assert response.headers["Location"] == "/"
    assert not await is_logged_in(client)


@pytest.mark.parametrize("path", ["/", "/hello", "/no/such/page"])
async def test_anonymous_pages_without_a_form_may_be_cached(client: AnyClient, path: str) -> None:
    assert "Cache-Control" not in (await client.get(path)).headers
