"""Account self-service: change the password, see and end sessions (both backends)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2 import extract_parameters
from quart import Quart
from quart import session
from quart.testing import QuartClient

from flaskr_async import auth
from flaskr_async.accounts import devices
from flaskr_async.accounts import login_sessions
from flaskr_async.accounts import passwords
from flaskr_async.accounts import throttle
from flaskr_async.clients import client_of
from flaskr_async.db import get_db
from tests.helpers import WERKZEUG_HASHES
from tests.helpers import AuthActions
from tests.helpers import add_failures
from tests.helpers import csrf_token_of
from tests.helpers import failure_rows
from tests.helpers import fetch_one
from tests.helpers import logged_in_as
from tests.helpers import page_text
from tests.helpers import row_count
from tests.helpers import set_cookie_of

CHANGE = {"current_password": "test", "new_password": "a-new-long-password"}
PAGES = [("GET", "/auth/password"), ("POST", "/auth/password"), ("GET", "/auth/sessions")]
PAGES.append(("POST", "/auth/sessions/end-others"))


async def browser(app: Quart, user_agent: str = "TestBrowser/1.0") -> QuartClient:
    """Return a new client logged in as the fixture user "test", sending a User-Agent."""
    client = app.test_client()
    assert isinstance(client, QuartClient)
    form = {"username": "test", "password": "test"}
    if app.config["WTF_CSRF_ENABLED"]:
        form["csrf_token"] = csrf_token_of(await page_text(await client.get("/auth/login")))
    response = await client.post("/auth/login", form=form, headers={"User-Agent": user_agent})
    assert response.status_code == 302
    return client


async def stored_password(app: Quart) -> str:
    """Return the fixture user's stored hash."""
    row = await fetch_one(app, 'SELECT password FROM "user" WHERE username = ?', ("test",))
    assert row is not None
    return str(row["password"])


@pytest.mark.parametrize(("method", "path"), PAGES)
async def test_anonymous_is_sent_to_log_in(client: QuartClient, method: str, path: str) -> None:
    form = CHANGE if path == "/auth/password" and method == "POST" else None
    response = await client.open(path, method=method, form=form)
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"


@pytest.mark.parametrize(("method", "path"), [page for page in PAGES if page[0] == "POST"])
async def test_a_post_without_the_csrf_token_is_400(
    csrf_app: Quart, method: str, path: str
) -> None:
    client = await browser(csrf_app)
    before = await stored_password(csrf_app)
    response = await client.open(path, method=method, form=CHANGE if "password" in path else {})
    assert response.status_code == 400
    assert await stored_password(csrf_app) == before
    assert await logged_in_as(csrf_app, client) == 1


async def test_the_pages_carry_the_csrf_token_and_are_in_the_navigation(csrf_app: Quart) -> None:
    client = await browser(csrf_app)
    index = await page_text(await client.get("/"))
    assert 'href="/auth/password"' in index and 'href="/auth/sessions"' in index
    page = await page_text(await client.get("/auth/password"))
    for field in ("current_password", "new_password"):
        assert f'name="{field}"' in page
    form = {**CHANGE, "csrf_token": csrf_token_of(page)}
    response = await client.post("/auth/password", form=form)
    assert response.status_code == 302
    sessions = await page_text(await client.get("/auth/sessions"))
    response = await client.post(
        "/auth/sessions/end-others", form={"csrf_token": csrf_token_of(sessions)}
    )
    assert response.status_code == 302


async def test_changing_the_password_ends_every_other_session(app: Quart) -> None:
    this, other, third = [await browser(app, f"Browser/{n}") for n in range(3)]
    old_cookie = this.cookie_jar
    old_id = await logged_in_as(app, this)
    async with this.session_transaction() as session:
        old_session_id = session[login_sessions.SESSION_ID]

    response = await this.post("/auth/password", form=CHANGE)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Your password was changed." in await page_text(await this.get("/"))
    assert await logged_in_as(app, this) == old_id == 1
    async with this.session_transaction() as session:
        assert session[login_sessions.SESSION_ID] != old_session_id  # rotated
    for ended in (other, third):
        assert await logged_in_as(app, ended) is None
        assert "Log In" in await page_text(await ended.get("/"))
    assert await row_count(app, "user_session") == 1
    assert old_cookie is this.cookie_jar
    # The new password logs in; the old one no longer does.
    assert (await AuthActions(app.test_client()).login("test", "test")).status_code == 200
    fresh = app.test_client()
    assert (await AuthActions(fresh).login("test", CHANGE["new_password"])).status_code == 302


async def test_a_wrong_current_password_changes_nothing_and_counts(app: Quart) -> None:
    this, other = await browser(app), await browser(app)
    before = await stored_password(app)
    wrong = {**CHANGE, "current_password": "not-the-password"}

    response = await this.post("/auth/password", form=wrong)

    assert response.status_code == 200
    assert "Incorrect password." in await page_text(response)
    assert await stored_password(app) == before
    assert await logged_in_as(app, other) == 1
    assert await row_count(app, "login_attempt") == 1  # a failed login, for the throttle


async def test_the_throttle_refuses_a_stolen_session_guessing(app: Quart) -> None:
    this = await browser(app)
    wrong = {**CHANGE, "current_password": "not-the-password"}
    for _ in range(10):  # LOGIN_MAX_FAILURES_PER_USERNAME, from this browser's address
        assert (await this.post("/auth/password", form=wrong)).status_code == 200

    refused = await this.post("/auth/password", form=CHANGE)  # even the right one: unchecked

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many incorrect passwords." in await page_text(refused)
    assert await row_count(app, "login_attempt") == 10
    # And the login page counts the same failures.
    assert (await AuthActions(app.test_client()).login()).status_code == 429


async def test_failures_elsewhere_never_lock_a_session_out_of_its_password_form(
    app: Quart,
) -> None:
    this = await browser(app)
    # Strangers' failures at this address and from everywhere: the login page is refused...
    await add_failures(app, failure_rows(10, "test", client_of("invalid")))
    await add_failures(app, failure_rows(20, "test", "198.51.100.7"))
    assert (await AuthActions(app.test_client()).login()).status_code == 429
    # ...but the session is a browser known to the user, limited by its own failures only.
    assert (await this.post("/auth/password", form=CHANGE)).status_code == 302


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"new_password": "a-new-long-password"}, "Current password is required."),
        ({"current_password": "test"}, "New password is required."),
        ({**CHANGE, "new_password": "short"}, "Password must be at least 8 characters."),
        ({**CHANGE, "new_password": "x" * 1025}, "Password must be at most 1024 characters."),
        ({**CHANGE, "new_password": "bell\x07-bell\x07"}, "Password contains characters"),
        ({**CHANGE, "new_password": "nul\x00-nul-nul"}, "must not contain NUL characters."),
        ({**CHANGE, "current_password": "x" * 1025}, "Password must be at most 1024 characters."),
    ],
    ids=["no current", "no new", "short", "long", "refused", "NUL", "long current"],
)
async def test_an_invalid_form_is_shown_again(
    app: Quart, form: dict[str, str], message: str
) -> None:
    this = await browser(app)
    before = await stored_password(app)
    response = await this.post("/auth/password", form=form)
    assert response.status_code == 200
    assert message in await page_text(response)
    assert await stored_password(app) == before
    assert await row_count(app, "login_attempt") == 0  # no password was checked


async def test_the_sessions_page_lists_each_session(app: Quart) -> None:
    this = await browser(app, "Firefox/140.0 <script>")
    await browser(app, "Safari/18.1\x07")
    page = await page_text(await this.get("/auth/sessions"))
    assert page.count("<tr>") == 3  # the header and two sessions
    assert "<bdi>Firefox/140.0 &lt;script&gt;</bdi> <strong>(this browser)</strong>" in page
    assert "Safari/18.1<" in page  # control characters are not kept
    assert len(re.findall(r'<time datetime="\d{4}-\d\d-\d\dT[\d:]{8}\+00:00">', page)) == 4
    assert "End Other Sessions" in page


async def test_ending_the_other_sessions_keeps_this_one(app: Quart) -> None:
    this, other = await browser(app), await browser(app)
    async with this.session_transaction() as session:
        old_session_id = session[login_sessions.SESSION_ID]

    response = await this.post("/auth/sessions/end-others")

    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/sessions"
    page = await page_text(await this.get("/auth/sessions"))
    assert "Your other sessions were ended." in page
    assert "This browser is your only session." in page
    assert await logged_in_as(app, this) == 1
    assert await logged_in_as(app, other) is None
    async with this.session_transaction() as session:
        assert session[login_sessions.SESSION_ID] != old_session_id  # a copied cookie ends too


async def test_a_user_keeps_at_most_the_newest_sessions(app: Quart) -> None:
    clients = [await browser(app) for _ in range(login_sessions.MAX_PER_USER + 2)]
    assert await row_count(app, "user_session") == login_sessions.MAX_PER_USER
    assert await logged_in_as(app, clients[0]) is None
    assert await logged_in_as(app, clients[-1]) == 1


async def test_a_change_forgets_every_browser_known_before(app: Quart) -> None:
    known = await browser(app)  # a thief's browser, say, that logged in with the password
    this = await browser(app)
    # Failures from elsewhere at this address fill the username's allowance for strangers.
    await add_failures(app, failure_rows(10, "test", client_of("invalid")))
    assert (await AuthActions(known).login()).status_code == 302  # exempt: a known browser

    assert (await this.post("/auth/password", form=CHANGE)).status_code == 302

    refused = await AuthActions(known).login("test", CHANGE["new_password"])
    assert refused.status_code == 429  # a stranger now, under the strangers' rules
    # The browser that changed it is known from now on.
    await this.post("/auth/logout")
    response = await AuthActions(this).login("test", CHANGE["new_password"])
    assert response.status_code == 302
    assert devices.COOKIE_NAME in set_cookie_of(response, devices.COOKIE_NAME)


async def test_a_stronger_hash_stays_at_least_as_strong_after_a_change(app: Quart) -> None:
    strong = PasswordHasher(time_cost=3, memory_cost=32 * 1024, parallelism=2).hash("test")
    async with app.app_context():
        await get_db().execute('UPDATE "user" SET password = ? WHERE id = 1', (strong,))
    this = await browser(app)
    assert (await this.post("/auth/password", form=CHANGE)).status_code == 302
    new = extract_parameters(await stored_password(app))
    assert (new.time_cost, new.memory_cost, new.parallelism) == (3, 32 * 1024, 2)


async def test_of_two_changes_racing_the_second_changes_nothing(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    this, other = await browser(app), await browser(app)
    real_verify = passwords.verify_password

    async def verify_then_race(stored: str | None, password: str) -> tuple[bool, bool]:
        result = await real_verify(stored, password)
        # Another request changes the password while this one hashes the new password.
        async with app.app_context():
            await get_db().execute(
                'UPDATE "user" SET password = ?, password_changed_at = 1 WHERE id = 1', ("raced",)
            )
        return result

    monkeypatch.setattr(auth, "verify_password", verify_then_race)
    response = await this.post("/auth/password", form=CHANGE)

    assert response.status_code == 409
    assert "Your password was changed meanwhile" in await page_text(response)
    assert await stored_password(app) == "raced"
    assert await logged_in_as(app, other) == 1  # this request ended nothing


async def test_a_deleted_account_changes_nothing(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    this = await browser(app)
    real_reserve = throttle.reserve

    async def reserve_then_delete(*args: Any) -> Any:
        reservation = await real_reserve(*args)
        await args[0].execute('DELETE FROM "user" WHERE id = 1')  # in the same transaction
        return reservation

    monkeypatch.setattr(throttle, "reserve", reserve_then_delete)
    response = await this.post("/auth/password", form=CHANGE)
    assert response.status_code == 200
    assert "Incorrect password." in await page_text(response)


async def test_a_new_session_id_wins_no_new_guesses(app: Quart) -> None:
    this = await browser(app)
    wrong = {**CHANGE, "current_password": "not-the-password"}
    for _ in range(10):
        assert (await this.post("/auth/password", form=wrong)).status_code == 200
    assert (await this.post("/auth/sessions/end-others")).status_code == 302  # a new id
    assert (await this.post("/auth/password", form=wrong)).status_code == 429


async def test_a_login_racing_a_change_gets_no_session(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_verify = passwords.verify_password

    async def verify_then_change(stored: str | None, password: str) -> tuple[bool, bool]:
        result = await real_verify(stored, password)
        # The owner changes the password (on another host) while this login is checked.
        async with app.app_context():
            await get_db().execute(
                'UPDATE "user" SET password = ?, password_changed_at = 1 WHERE id = 1', ("changed",)
            )
        return result

    # A werkzeug hash, which this login would upgrade if it went on.
    async with app.app_context():
        await get_db().execute(
            'UPDATE "user" SET password = ? WHERE id = 1', (WERKZEUG_HASHES["pbkdf2"],)
        )
    monkeypatch.setattr(auth, "verify_password", verify_then_change)
    client = app.test_client()
    response = await AuthActions(client).login()
    assert response.status_code == 200
    assert "Incorrect username or password." in await page_text(response)
    assert await row_count(app, "user_session") == 0
    assert await stored_password(app) == "changed"  # not undone by a rehash either


async def test_an_ended_session_cannot_end_the_others(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    thief, owner = await browser(app), await browser(app)
    real_load = login_sessions.load_user

    async def load_then_ended() -> Any:
        user = await real_load()
        # The owner's end-others ends the thief's session while the thief's request runs.
        session_id = session[login_sessions.SESSION_ID]
        await get_db().execute(
            "DELETE FROM user_session WHERE id_hash = ?", (login_sessions.id_hash(session_id),)
        )
        return user

    monkeypatch.setattr(login_sessions, "load_user", load_then_ended)
    response = await thief.post("/auth/sessions/end-others")
    monkeypatch.undo()

    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    assert await logged_in_as(app, owner) == 1
    assert await logged_in_as(app, thief) is None
    assert await row_count(app, "user_session") == 1


async def test_a_user_agent_in_utf_8_is_shown_as_sent(app: Quart) -> None:
    this = await browser(app, "Café/1.0")  # sent as UTF-8 bytes, which ASGI hands on as Latin-1
    assert "Café/1.0" in await page_text(await this.get("/auth/sessions"))


async def test_logins_and_a_change_racing_a_rehash_all_succeed(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    this = await browser(app)
    real_verify = passwords.verify_password

    async def verify_then_rehash(stored: str | None, password: str) -> tuple[bool, bool]:
        result = await real_verify(stored, password)
        # Another login rehashes the same password meanwhile: no change of password.
        async with app.app_context():
            rehashed = passwords.hash_sync("test")
            await get_db().execute('UPDATE "user" SET password = ? WHERE id = 1', (rehashed,))
        return result

    monkeypatch.setattr(auth, "verify_password", verify_then_rehash)
    assert (await AuthActions(app.test_client()).login()).status_code == 302
    assert (await this.post("/auth/password", form=CHANGE)).status_code == 302
    monkeypatch.undo()
    assert (
        await AuthActions(app.test_client()).login("test", CHANGE["new_password"])
    ).status_code == 302


async def test_a_thiefs_guesses_leave_the_owners_other_logins_their_own(app: Quart) -> None:
    owner, thief = await browser(app), await browser(app)
    wrong = {**CHANGE, "current_password": "not-the-password"}
    for _ in range(10):
        assert (await thief.post("/auth/password", form=wrong)).status_code == 200
    assert (await thief.post("/auth/password", form=wrong)).status_code == 429
    # The owner's own login has its own allowance: the change goes through, the thief is out.
    assert (await owner.post("/auth/password", form=CHANGE)).status_code == 302
    assert await logged_in_as(app, thief) is None
