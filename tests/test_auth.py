"""Register, log in, log out, login_required, password hashes and login throttling."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import pytest
from quart import Quart
from quart import g
from quart import session
from quart.testing import QuartClient

from flaskr_async.accounts import passwords
from flaskr_async.accounts.login_sessions import id_hash
from flaskr_async.auth import wait_text
from flaskr_async.clients import client_of
from flaskr_async.db import current_database
from tests.helpers import DATA_SQL
from tests.helpers import WERKZEUG_HASHES
from tests.helpers import AuthActions
from tests.helpers import add_failures
from tests.helpers import csrf_token_of
from tests.helpers import failure_rows
from tests.helpers import fetch_one
from tests.helpers import page_text
from tests.helpers import row_count
from tests.helpers import serving


async def stored_user(app: Quart, username: str) -> Any:
    """Return a user's row, re-read from the database."""
    return await fetch_one(app, 'SELECT * FROM "user" WHERE username = ?', (username,))


@pytest.mark.production_password_cost
async def test_register(client: QuartClient, app: Quart) -> None:
    assert (await client.get("/auth/register")).status_code == 200
    response = await client.post("/auth/register", form={"username": "a", "password": "abcdefgh"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    user = await stored_user(app, "a")
    assert user is not None
    assert user["password"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", "", "Username is required."),
        ("   ", "abcdefgh", "Username is required."),
        ("a", "", "Password is required."),
        ("test", "testtest", "User test is already registered."),
        ("a", "1234567", "Password must be at least 8 characters."),
        ("a", "x" * 1025, "Password must be at most 1024 characters."),
        ("u" * 151, "abcdefgh", "Username must be at most 150 characters."),
        ("a\x00b", "abcdefgh", "Username must not contain NUL characters."),
        ("a", "abcdefg\x00", "Password must not contain NUL characters."),
    ],
)
async def test_register_validate_input(
    client: QuartClient, app: Quart, username: str, password: str, message: str
) -> None:
    response = await client.post(
        "/auth/register", form={"username": username, "password": password}
    )
    assert response.status_code == 200
    assert message in (await page_text(response)).replace("&#39;", "'")
    async with app.app_context():
        users = await current_database().fetch_all('SELECT username FROM "user" ORDER BY id')
    assert [user["username"] for user in users] == ["test", "other"]


@pytest.mark.parametrize(
    ("username", "password"),
    [("u" * 150, "p" * 1024), ("a", "        "), ("ünïcødé 名前", "pässwörd ✓ long")],
)
async def test_register_accepts_the_limits(
    client: QuartClient, app: Quart, username: str, password: str
) -> None:
    response = await client.post(
        "/auth/register", form={"username": username, "password": password}
    )
    assert response.headers["Location"] == "/auth/login"
    response = await client.post("/auth/login", form={"username": username, "password": password})
    assert response.headers["Location"] == "/"


async def test_login(client: QuartClient, app: Quart, auth: AuthActions) -> None:
    assert (await client.get("/auth/login")).status_code == 200
    response = await auth.login()
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    async with client.session_transaction() as current:
        session_id = current["session_id"]
    row = await fetch_one(
        app, "SELECT user_id FROM user_session WHERE id_hash = ?", (id_hash(session_id),)
    )
    assert row is not None and row["user_id"] == 1
    page = await page_text(await client.get("/"))
    assert "test" in page and "Log Out" in page and "Log In" not in page


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("a", "test", "Incorrect username or password."),
        ("test", "a", "Incorrect username or password."),
        ("", "test", "Username is required."),
        ("test", "", "Password is required."),
    ],
)
async def test_login_validate_input(
    auth: AuthActions, username: str, password: str, message: str
) -> None:
    response = await auth.login(username, password)
    assert response.status_code == 200
    assert message in await page_text(response)


async def test_failed_logins_are_logged_by_the_package(
    auth: AuthActions, caplog: pytest.LogCaptureFixture
) -> None:
    await auth.login("nobody", "wrong")
    await auth.login("test", "wrong")
    failures = [
        r for r in caplog.records if r.name == "flaskr_async" and "Failed login" in r.message
    ]
    # "<local>" is the Quart test client's remote address.
    assert [r.getMessage() for r in failures] == [
        'Failed login for username "nobody" from <local>',
        'Failed login for username "test" from <local>',
    ]


@pytest.mark.parametrize(
    ("username", "forwarded_for", "line"),
    [
        ("\x1b[2K\x1b[1Aroot", "192.0.2.7", 'username "\\x1B[2K\\x1B[1Aroot" from 192.0.2.7'),
        ('x" from 10.0.0.1', "192.0.2.7", 'username "x\\" from 10.0.0.1" from 192.0.2.7'),
        ("a\\b\x7f\x85", "192.0.2.7", 'username "a\\\\b\\x7F\\xC2\\x85" from 192.0.2.7'),
        ("nobody", "\x1b]0;owned\x07", 'username "nobody" from \\x1B]0;owned\\x07'),
    ],
)
async def test_failed_logins_log_client_text_escaped(
    app_config: dict[str, Any],
    username: str,
    forwarded_for: str,
    line: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Behind a proxy the address is the client's X-Forwarded-For entry: the client's text too.
    async with serving({**app_config, "PROXY_FIX_TRUSTED_HOPS": 1}) as app:
        client = app.test_client()
        await client.post(
            "/auth/login",
            form={"username": username, "password": "wrong"},
            headers={"X-Forwarded-For": forwarded_for},
        )
    failures = [r.getMessage() for r in caplog.records if "Failed login" in r.message]
    assert failures == [f"Failed login for {line}"]


def test_the_fixture_users_hold_today_s_hashes() -> None:
    # Were the tests' parameters (tests/conftest.py) changed, every login would rehash, unseen.
    stored = re.findall(r"'(\$argon2id\$[^']+)'", DATA_SQL)
    assert len(stored) == 2
    assert all(
        passwords.verify_argon2(h, p) for h, p in zip(stored, ["test", "other"], strict=True)
    )
    # Nor weaker (a rehash at each login) nor stronger (each login at the app's cost).
    assert not any(passwords.HASHER.check_needs_rehash(h) for h in stored)


@pytest.mark.parametrize("method", WERKZEUG_HASHES)
async def test_login_upgrades_old_hashes(app: Quart, auth: AuthActions, method: str) -> None:
    async with app.app_context(), current_database().transaction() as tx:
        await tx.execute(
            'UPDATE "user" SET password = ? WHERE username = ?', (WERKZEUG_HASHES[method], "test")
        )
    assert (await stored_user(app, "test"))["password"].startswith(f"{method}:")
    await auth.login()
    upgraded = (await stored_user(app, "test"))["password"]
    assert upgraded.startswith("$argon2id$")
    await auth.logout()
    assert (await auth.login()).headers["Location"] == "/"
    assert (await stored_user(app, "test"))["password"] == upgraded


async def test_a_password_check_holds_no_database_connection(
    app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    checking, may_finish = threading.Event(), threading.Event()
    real_verify = passwords.verify_sync

    def slow_verify(stored: str | None, password: str) -> tuple[bool, bool]:
        checking.set()
        may_finish.wait(10)
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify_sync", slow_verify)
    # One connection: if the login kept it while checking, the index would wait for it.
    async with serving({**app_config, "DATABASE_POOL_SIZE": 1}) as app:
        form = {"username": "test", "password": "test"}
        login = asyncio.create_task(app.test_client().post("/auth/login", form=form))
        try:
            assert await asyncio.to_thread(checking.wait, 10)
            index = await asyncio.wait_for(app.test_client().get("/"), 5)
            assert index.status_code == 200
        finally:
            may_finish.set()
        assert (await login).headers["Location"] == "/"


async def test_login_starts_a_new_session(client: QuartClient, auth: AuthActions) -> None:
    async with client.session_transaction() as planted:
        planted["planted"] = "by an attacker"
    await auth.login()
    async with client.session_transaction() as current:
        assert "planted" not in current
        assert isinstance(current["session_id"], str)
        assert current.permanent


async def test_logout(client: QuartClient, auth: AuthActions) -> None:
    await auth.login()
    response = await auth.logout()
    async with client.session_transaction() as current:
        assert "session_id" not in current
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


async def test_logout_needs_post(client: QuartClient, auth: AuthActions) -> None:
    await auth.login()
    assert (await client.get("/auth/logout")).status_code == 405
    assert "Log Out" in await page_text(await client.get("/"))


async def test_session_of_a_deleted_user_is_anonymous(
    client: QuartClient, app: Quart, auth: AuthActions
) -> None:
    await auth.login()
    async with app.app_context():
        await current_database().execute('DELETE FROM "user" WHERE id = 1')
    page = await page_text(await client.get("/"))
    assert "Log In" in page


async def before_request(app: Quart) -> None:
    """Run the app's before-request hooks in the current request context."""
    # What preprocess_request does, whose signature Quart 0.23 changed (it takes the context).
    for hook in app.before_request_funcs[None]:
        await app.ensure_async(hook)()


@pytest.mark.parametrize("path", ["/hello", "/static/style.css"])
async def test_hello_and_static_files_skip_the_session(app: Quart, path: str) -> None:
    async with app.test_request_context(path):
        # Quart 0.23 counts any read through the proxy as an access (this one too), so
        # clear the flag on the session itself and read it there afterwards.
        current = session._get_current_object()  # type: ignore[attr-defined, unused-ignore]
        current.accessed = False
        await before_request(app)
        assert not current.accessed
        assert g.user is None


# The Quart test client's remote address, "<local>", is no IP address: the throttle counts it
# as the one client of all such addresses.
LOCAL = client_of("<local>")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (890, "15 minutes"),
        (900, "15 minutes"),
    ],
)
def test_waits_of_a_minute_or_more_are_said_in_minutes(seconds: int, text: str) -> None:
    assert wait_text(seconds) == text


async def test_ten_failures_for_a_username_throttle_it(auth: AuthActions) -> None:
    for _ in range(10):
        response = await auth.login("test", "wrong")
        assert response.status_code == 200
    refused = await auth.login("test", "test")
    assert refused.status_code == 429
    assert 890 <= int(refused.headers["Retry-After"]) <= 900
    assert "Too many failed logins. Try again in 15 minutes." in await page_text(refused)
    other = await auth.login("other", "other")
    assert other.headers["Location"] == "/"


async def test_twenty_failures_from_an_address_throttle_it(app: Quart, auth: AuthActions) -> None:
    await auth.login("nobody", "wrong")
    row = await fetch_one(app, "SELECT address FROM login_attempt")
    assert row is not None
    await add_failures(app, [(f"user{n}", row["address"], time.time()) for n in range(18)])
    assert (await auth.login("test", "wrong")).status_code == 200
    refused = await auth.login("test", "test")
    assert refused.status_code == 429


async def test_successful_logins_do_not_count(auth: AuthActions) -> None:
    for _ in range(12):
        assert (await auth.login()).headers["Location"] == "/"


async def test_failures_leave_the_window(app: Quart, auth: AuthActions) -> None:
    await add_failures(app, failure_rows(9, "test", LOCAL, age=900.5))
    await add_failures(app, failure_rows(9, "test", LOCAL, age=100))
    assert (await auth.login("test", "wrong")).status_code == 200
    refused = await auth.login("test", "test")
    assert refused.status_code == 429
    assert 790 <= int(refused.headers["Retry-After"]) <= 800


async def test_old_failures_are_pruned(app: Quart, auth: AuthActions) -> None:
    await add_failures(app, failure_rows(5, "test", "192.0.2.1", age=2000))
    await auth.login("test", "wrong")
    assert await row_count(app, "login_attempt") == 1


@pytest.mark.parametrize("path", ["/create", "/1/update", "/1/delete"])
async def test_login_required(client: QuartClient, path: str) -> None:
    response = await client.post(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"


async def test_error_pages_keep_the_logged_in_navigation(app_config: dict[str, Any]) -> None:
    async with serving({**app_config, "WTF_CSRF_ENABLED": True}) as app:
        client = app.test_client()
        token = csrf_token_of(await page_text(await client.get("/auth/login")))
        form = {"username": "test", "password": "test", "csrf_token": token}
        assert (await client.post("/auth/login", form=form)).status_code == 302
        for response in (
            await client.get("/no/such/page"),
            await client.post("/create", form={"title": "t", "csrf_token": "forged"}),
        ):
            page = await page_text(response)
            assert response.status_code in (404, 400)
            assert "Log Out" in page and csrf_token_of(page)
