"""Secure defaults: CSRF, body limit, secrets, cookies, headers, hashing, throttling, Host."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner
from itsdangerous import URLSafeTimedSerializer
from markupsafe import escape
from quart import Quart
from quart import typing as quart_typing
from quart.testing.app import LifespanError

from flaskr_async import create_app
from flaskr_async.accounts import passwords
from flaskr_async.middleware.security import COOKIE_SECURE_OVER_HTTP
from flaskr_async.middleware.security import COOKIES_REFUSED
from flaskr_async.middleware.security import FORM_EXPIRED
from flaskr_async.middleware.security import NO_SESSION_COOKIE
from flaskr_async.middleware.security import REFERER_FOREIGN
from flaskr_async.middleware.security import REFERER_MISSING
from flaskr_async.middleware.security import SECURITY_HEADERS
from flaskr_async.middleware.security import TOKEN_FIELD_MISSING
from tests.helpers import STATE_CHANGING_FORMS
from tests.helpers import csrf_token_of
from tests.helpers import fetch_one
from tests.helpers import load_test_data
from tests.helpers import page_text
from tests.helpers import row_count
from tests.helpers import serving
from tests.helpers import set_cookie_of
from tests.servers import ROOT
from tests.servers import TEST_SECRET_KEY
from tests.servers import TLS
from tests.servers import free_port
from tests.servers import running
from tests.servers import server_env
from tests.servers import start

# Aliased: a name starting with "Test" in this module would be collected as a test class.
Client = quart_typing.TestClientProtocol

# Backend-neutral: these run on SQLite; the seam's own tests cover both backends.
pytestmark = pytest.mark.sqlite_only


async def token_from(client: Client, path: str = "/auth/login") -> str:
    """Return the CSRF token a form page of this client's session carries."""
    return csrf_token_of(await page_text(await client.get(path)))


async def log_in(client: Client, username: str = "test", password: str = "test") -> None:
    """Log the client in through the protected form."""
    form = {"username": username, "password": password, "csrf_token": await token_from(client)}
    response = await client.post("/auth/login", form=form)
    assert response.headers["Location"] == "/", "login failed"


async def database_state(app: Quart) -> tuple[int, int, str]:
    """Return what any form could change: users, posts, and post 1's title."""
    post = await fetch_one(app, "SELECT title FROM post WHERE id = 1")
    return await row_count(app, "user"), await row_count(app, "post"), post["title"] if post else ""


def signed_in_the_past(app: Quart, raw_token: str) -> str:
    """Sign a session's raw CSRF token as if it had been issued two hours ago."""

    class TwoHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 3600

    serializer = URLSafeTimedSerializer(TEST_SECRET_KEY, salt="wtf-csrf-token", signer=TwoHoursAgo)
    return serializer.dumps(raw_token)


async def bad_tokens(app: Quart, client: Client) -> dict[str, str | None]:
    """Return every kind of token the app must refuse for this client's session."""
    good = await token_from(client)
    async with client.session_transaction() as session:
        raw = session["csrf_token"]
    stranger = app.test_client()
    return {
        "missing": None,
        "empty": "",
        "malformed": "not-a-token",
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "other key": URLSafeTimedSerializer("another-key", salt="wtf-csrf-token").dumps(raw),
        "other session": await token_from(stranger),
        "expired": signed_in_the_past(app, raw),
    }


@pytest.mark.parametrize("form_name", STATE_CHANGING_FORMS)
async def test_every_form_refuses_bad_csrf_tokens(
    csrf_config: dict[str, Any], form_name: str
) -> None:
    path, fields, needs_login = STATE_CHANGING_FORMS[form_name]
    # One hour: long enough for the valid token, short enough that "expired" has expired.
    async with serving({**csrf_config, "WTF_CSRF_TIME_LIMIT": 3600}) as app:
        client = app.test_client()
        if needs_login:
            await log_in(client)
        before = await database_state(app)
        for kind, token in (await bad_tokens(app, client)).items():
            form = dict(fields) if token is None else {**fields, "csrf_token": token}
            response = await client.post(path, form=form)
            assert response.status_code == 400, kind
            # A form without the field was not reloaded too late: a script left it out.
            message = TOKEN_FIELD_MISSING if kind in ("missing", "empty") else FORM_EXPIRED
            assert str(escape(message)) in await page_text(response), kind
            assert await database_state(app) == before, kind
        # Still logged in (or still anonymous): the refused logout and login changed nothing.
        assert ("Log Out" in await page_text(await client.get("/"))) is needs_login

        response = await client.post(path, form={**fields, "csrf_token": await token_from(client)})
        assert response.status_code in (302, 303)


@pytest.mark.parametrize(
    ("referer", "message"),
    [
        (None, REFERER_MISSING),
        ("", REFERER_MISSING),
        ("https://evil.example/auth/login", REFERER_FOREIGN),
        ("https://localhost:8443/auth/login", REFERER_FOREIGN),  # another port: another origin
        ("http://localhost/auth/login", REFERER_FOREIGN),  # the form was on plain HTTP
    ],
)
async def test_a_refused_referer_over_https_says_what_to_do(
    csrf_app: Quart, referer: str | None, message: str
) -> None:
    client = csrf_app.test_client()
    token = await token_from(client)
    form = {"username": "test", "password": "test", "csrf_token": token}
    headers = {} if referer is None else {"Referer": referer}
    response = await client.post("/auth/login", form=form, headers=headers, scheme="https")
    assert response.status_code == 400
    page = await page_text(response)
    assert str(escape(message)) in page  # as Jinja escapes it
    assert FORM_EXPIRED not in page  # reloading would not help
    # The same form with this site's Referer gets through; with a bad token it has expired.
    good = {"Referer": "https://localhost/auth/login"}
    bad_token = await client.post("/auth/login", form={**form, "csrf_token": "x"}, headers=good)
    assert FORM_EXPIRED in await page_text(bad_token)
    response = await client.post("/auth/login", form=form, headers=good, scheme="https")
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("cookie", "secure", "scheme", "message"),
    [
        (None, True, "http", NO_SESSION_COOKIE + COOKIE_SECURE_OVER_HTTP),
        (None, False, "http", NO_SESSION_COOKIE + COOKIES_REFUSED),
        (None, True, "https", NO_SESSION_COOKIE + COOKIES_REFUSED),
        ("forged", True, "http", FORM_EXPIRED),
        ("forged", False, "https", FORM_EXPIRED),
    ],
)
async def test_a_form_without_a_session_cookie_says_so_and_why(
    csrf_config: dict[str, Any], cookie: str | None, secure: bool, scheme: str, message: str
) -> None:
    async with serving({**csrf_config, "SESSION_COOKIE_SECURE": secure}) as app:
        token = await token_from(app.test_client())  # a real token, of another session
        client = app.test_client()
        if cookie is not None:
            client.set_cookie("localhost", "session", cookie)
        form = {"username": "test", "password": "test", "csrf_token": token}
        headers = {"Referer": f"{scheme}://localhost/auth/login"}
        response = await client.post("/auth/login", form=form, headers=headers, scheme=scheme)
        assert response.status_code == 400
        page = await page_text(response)
        assert str(escape(message)) in page
        assert (str(escape(NO_SESSION_COOKIE)) in page) is (cookie is None)  # not a bad token


async def test_one_token_serves_every_form_of_the_session(
    csrf_app: Quart, csrf_config: dict[str, Any]
) -> None:
    client = csrf_app.test_client()
    await log_in(client)
    first_tab = await token_from(client, "/create")
    second_tab = await token_from(client, "/1/update")
    for title, token in (("from tab one", first_tab), ("from tab two", second_tab)):
        form = {"title": title, "body": "", "csrf_token": token}
        assert (await client.post("/create", form=form)).headers["Location"] == "/"
    assert await row_count(csrf_app, "post") == 3


async def test_a_token_dies_with_its_session(csrf_app: Quart) -> None:
    client = csrf_app.test_client()
    await log_in(client)
    old_token = await token_from(client, "/create")
    await client.post("/auth/logout", form={"csrf_token": old_token})
    await log_in(client)
    response = await client.post(
        "/create", form={"title": "t", "body": "", "csrf_token": old_token}
    )
    assert response.status_code == 400


async def test_bodies_over_the_limit_are_413(client: Client, app: Quart) -> None:
    await client.post("/auth/login", form={"username": "test", "password": "test"})
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 1024 * 1024
    response = await client.post("/create", form={"title": "big", "body": "x" * limit})
    assert response.status_code == 413
    assert await row_count(app, "post") == 1


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({"SECRET_KEY": "dev"}, True),
        ({"SECRET_KEY": "x" * 31}, True),
        ({"SECRET_KEY": b"x" * 31}, True),
        ({"SECRET_KEY": "é" * 15}, True),  # 30 bytes in UTF-8, though 15 characters
        ({"SECRET_KEY": "x" * 32}, False),
        ({"SECRET_KEY": "é" * 16}, False),
        ({"SECRET_KEY": "dev", "DEBUG": True}, False),
        ({"SECRET_KEY": "dev", "TESTING": True}, False),
    ],
)
async def test_serving_refuses_a_weak_secret_key(
    app_config: dict[str, Any], settings: dict[str, Any], refused: bool
) -> None:
    config = {**app_config, "TESTING": False, **settings}
    app = create_app(config)  # Flaskr's factory builds the app whatever the key (issue 26)
    if refused:
        with pytest.raises(LifespanError, match="^Error during startup SECRET_KEY = ") as error:
            async with app.test_app():
                pass  # pragma: no cover - start-up fails
        assert "FLASKR_SECRET_KEY" in str(error.value)
        assert "secrets.token_hex()" in str(error.value)
        # The instance folder this app reads (the clone's here; installed: under sys.prefix).
        assert f"set it in {ROOT / 'instance' / 'config.py'} (" in str(error.value)
    else:
        async with app.test_app():
            assert (await app.test_client().get("/hello")).status_code == 200


async def session_cookie_of(app: Quart) -> str:
    """Serve an app on the fixture rows, log in, and return the signed session cookie."""
    async with app.test_app():
        await load_test_data(app)
        response = await app.test_client().post(
            "/auth/login", form={"username": "test", "password": "test"}
        )
    return set_cookie_of(response).split(";")[0].split("=", 1)[1]


async def logged_in(app: Quart, cookie: str) -> bool:
    """Tell whether an app recognises the session cookie as a logged-in user."""
    async with app.test_app():
        response = await app.test_client().get("/", headers={"Cookie": f"session={cookie}"})
    return "Log Out" in await page_text(response)


async def test_secret_key_fallbacks_keep_sessions_through_a_rotation(
    app_config: dict[str, Any],
) -> None:
    cookie = await session_cookie_of(create_app(app_config))
    new_key = "a-brand-new-secret-key-of-enough-length"
    rotated = {**app_config, "SECRET_KEY": new_key, "SECRET_KEY_FALLBACKS": [TEST_SECRET_KEY]}
    assert await logged_in(create_app(rotated), cookie)
    assert not await logged_in(create_app({**app_config, "SECRET_KEY": new_key}), cookie)


@pytest.mark.parametrize(
    ("settings", "secure"),
    [
        ({"TESTING": False}, True),
        ({"TESTING": False, "DEBUG": True}, False),
        ({"TESTING": True}, False),
        ({"TESTING": False, "SESSION_COOKIE_SECURE": False}, False),  # plain-HTTP local use
    ],
)
async def test_session_cookie_flags(
    app_config: dict[str, Any], settings: dict[str, Any], secure: bool
) -> None:
    async with serving({**app_config, **settings}) as app:
        response = await app.test_client().post(
            "/auth/login", form={"username": "test", "password": "test"}
        )
    cookie = set_cookie_of(response)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure
    # A permanent session with the configured lifetime (14 days), not a browser-session cookie.
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie)[1])  # type: ignore[index]
    lifetime = expires - datetime.now(UTC)
    assert timedelta(days=14) - timedelta(minutes=1) < lifetime <= timedelta(days=14)


def headers_app(app_config: dict[str, Any]) -> Quart:
    """Build an app with two extra routes: one that fails, one that sets its own header."""
    app = create_app({**app_config, "TESTING": False, "PROPAGATE_EXCEPTIONS": False})

    @app.route("/boom")
    async def boom() -> str:
        raise RuntimeError("a bug")

    @app.route("/framed")
    async def framed() -> tuple[str, dict[str, str]]:
        return "ok", {"X-Frame-Options": "SAMEORIGIN"}

    return app


RESPONSE_KINDS: dict[str, tuple[str, str, dict[str, str], int]] = {
    "page": ("GET", "/", {}, 200),
    "text": ("GET", "/hello", {}, 200),
    "static file": ("GET", "/static/style.css", {}, 200),
    "redirect": ("GET", "/create", {}, 302),
    "bad request": ("GET", "/?before=nonsense", {}, 400),
    "csrf failure": ("POST", "/auth/login", {"username": "a", "password": "b"}, 400),
    "not found": ("GET", "/no/such/page", {}, 404),
    "method not allowed": ("GET", "/auth/logout", {}, 405),
    "too large": ("POST", "/auth/login", {"password": "x" * (1024 * 1024)}, 413),
    "server error": ("GET", "/boom", {}, 500),
}


async def test_security_headers_on_every_kind_of_response(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = headers_app({**app_config, "WTF_CSRF_ENABLED": True})
    async with app.test_app():
        client = app.test_client()
        for kind, (method, path, form, status) in RESPONSE_KINDS.items():
            if method == "GET":
                response = await client.get(path)
            else:
                response = await client.post(path, form=form)
            assert response.status_code == status, kind
            for name, value in SECURITY_HEADERS.items():
                assert response.headers.get(name) == value, (kind, name)
        framed = await client.get("/framed")
    assert framed.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]  # a view's own wins
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "Exception on request GET /boom" in caplog.text


async def test_pages_have_no_inline_script_or_style(
    client: Client,
) -> None:
    await client.post("/auth/login", form={"username": "test", "password": "test"})
    for path in ("/", "/create", "/1/update", "/auth/login", "/auth/register"):
        page = await page_text(await client.get(path))
        assert "<script>" not in page and " onclick=" not in page and "style=" not in page, path


@pytest.mark.production_password_cost
def test_hash_parameters_meet_owasp() -> None:
    parameters = passwords.HASHER
    assert parameters.type.name == "ID"
    assert parameters.memory_cost >= 19 * 1024
    assert parameters.time_cost >= 2
    # The dummy hash has the same parameters, so checking it costs what a real check costs.
    assert not parameters.check_needs_rehash(passwords.DUMMY_HASH)


async def test_unknown_users_cost_a_full_password_check(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real_verify = passwords.verify_argon2

    def recording_verify(stored: str, password: str) -> bool:
        checked.append(stored)
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify_argon2", recording_verify)
    response = await client.post("/auth/login", form={"username": "nobody", "password": "x"})
    assert "Incorrect username or password." in await page_text(response)
    assert checked == [passwords.DUMMY_HASH]


@pytest.mark.production_password_cost
async def test_concurrent_hashes_are_capped(
    app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most = 0, 0
    lock = threading.Lock()
    real_hash = passwords.hash_sync

    def counting_hash(password: str, at_least: str | None = None) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return real_hash(password, at_least)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(passwords, "hash_sync", counting_hash)
    app = create_app({**app_config, "PASSWORD_HASH_CONCURRENCY": 2})
    async with app.test_app():
        client = app.test_client()
        forms = [{"username": f"user{i}", "password": "long-enough"} for i in range(6)]
        responses = await asyncio.gather(
            *(client.post("/auth/register", form=form) for form in forms)
        )
    assert all(response.status_code == 302 for response in responses)
    assert most == 2


async def fail_login(client: Client, username: str, headers: dict[str, str]) -> int:
    """Post a wrong password and return the status."""
    form = {"username": username, "password": "wrong"}
    return (await client.post("/auth/login", form=form, headers=headers)).status_code


async def test_a_rotated_forwarded_for_header_does_not_escape_throttling(
    client: Client,
) -> None:
    # Without a trusted proxy the header is the client's own words: it must be ignored.
    for i in range(20):
        assert await fail_login(client, f"user{i}", {"X-Forwarded-For": f"198.51.100.{i}"}) == 200
    assert await fail_login(client, "user99", {"X-Forwarded-For": "198.51.100.99"}) == 429


async def test_behind_a_proxy_the_address_it_saw_is_throttled(
    app_config: dict[str, Any],
) -> None:
    app = create_app({**app_config, "PROXY_FIX_TRUSTED_HOPS": 1})
    async with app.test_app():
        client = app.test_client()
        for i in range(20):
            # The client rotates what it sends; the proxy appends the address it really saw.
            forwarded = {"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.7"}
            assert await fail_login(client, f"user{i}", forwarded) == 200
        assert await fail_login(client, "x", {"X-Forwarded-For": "203.0.113.7"}) == 429
        assert await fail_login(client, "x", {"X-Forwarded-For": "203.0.113.8"}) == 200


def shipped_config_server(tmp_path: Path) -> tuple[Callable[[str], httpx.Response], Any]:
    """Start hypercorn with the shipped config on a free port; return a getter and the server."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "hypercorn", "--config", str(ROOT / "hypercorn.toml")),
        *("--bind", f"127.0.0.1:{port}", "asgi:app"),
    ]
    server = start(command, server_env(tmp_path / "flaskr.sqlite"), port)

    def get(host: str) -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{port}/hello", headers={"Host": host}, timeout=2, verify=TLS
        )

    return get, server


@pytest.mark.system
def test_shipped_hypercorn_config(tmp_path: Path) -> None:
    get, server = shipped_config_server(tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = get("localhost:8000")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "hypercorn did not start"
                time.sleep(0.05)
        assert response.status_code == 200
        assert "server" not in response.headers
        assert get("127.0.0.1:8000").status_code == 200
        # The app's TRUSTED_HOSTS, not hypercorn's server_names (tests/middleware/test_boundary.py).
        assert get("evil.example").status_code == 400
        assert get("localhost:8000.evil.example").status_code == 400
    finally:
        assert server.stop() == 0
    output = server.output()
    # No access log as shipped (nginx logs every request); the app's own lines still show.
    assert "GET /hello" not in output
    assert "Database closed" in output


@pytest.mark.system
@pytest.mark.parametrize(("secure", "status"), [(None, 400), ("false", 302)])
def test_a_script_keeps_its_session_over_http_only_with_the_secure_flag_off(
    tmp_path: Path, secure: str | None, status: int
) -> None:
    port = free_port()
    env = server_env(tmp_path / "flaskr.sqlite")
    del env["FLASKR_SESSION_COOKIE_SECURE"]
    if secure is not None:
        env["FLASKR_SESSION_COOKIE_SECURE"] = secure  # as make run sets it
    command = [sys.executable, "-m", "flaskr_async", "serve", "--bind", f"127.0.0.1:{port}"]
    with running(command, env, port) as server:
        # A script as the README's reader writes it: httpx keeps cookies, but not Secure ones
        # over http (the standard library's cookie policy).
        with httpx.Client(base_url=server.url, verify=TLS) as script:
            token = csrf_token_of(script.get("/auth/register").text)
            form = {"username": "script", "password": "long enough", "csrf_token": token}
            response = script.post("/auth/register", data=form)
        assert server.stop() == 0
    assert response.status_code == status
    if status == 400:
        assert "session cookie" in response.text
        assert "FLASKR_SESSION_COOKIE_SECURE=false" in response.text


@pytest.mark.parametrize(
    ("message", "to_send"),
    [
        (TOKEN_FIELD_MISSING, "send that input's value as csrf_token"),
        (REFERER_MISSING, "A script must send one itself: a Referer header"),
        (NO_SESSION_COOKIE + COOKIES_REFUSED, "one httpx.Client or requests.Session"),
    ],
)
def test_each_refusal_a_script_meets_says_what_it_must_send(message: str, to_send: str) -> None:
    assert to_send in message


# The Secure flag when debug comes on after create_app, as `quart run --debug` turns it on:
# (the settings given, debug at serving, the flag served).
DEBUG_LATER = [
    ({}, True, False),  # unset: off when debugging, as the settings table says
    ({}, False, True),
    ({"SESSION_COOKIE_SECURE": True}, True, True),  # the operator's choice stays
    ({"SESSION_COOKIE_SECURE": False}, False, False),
    ({"SESSION_COOKIE_SAMESITE": "None"}, True, True),  # SameSite=None needs Secure
]


@pytest.mark.parametrize(("settings", "debug", "secure"), DEBUG_LATER)
async def test_the_unset_secure_flag_follows_debug_turned_on_after_creation(
    database_url: str, settings: dict[str, Any], debug: bool, secure: bool
) -> None:
    app = create_app({"SECRET_KEY": TEST_SECRET_KEY, "DATABASE": database_url, **settings})
    app.debug = debug
    async with app.test_app():
        assert app.config["SESSION_COOKIE_SECURE"] is secure
