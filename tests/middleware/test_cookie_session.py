"""The session cookie's interface: the same cookie as Quart's, without per-request set-up."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart
from quart import session
from quart.sessions import NullSession
from quart.sessions import SecureCookieSessionInterface

from flaskr_async import create_app
from flaskr_async.middleware.cookie_session import CookieSessionInterface
from tests.helpers import AuthActions
from tests.helpers import page_text
from tests.helpers import set_cookie_of


def cookie_value(response: Any) -> str:
    """Return the session cookie's value from a response's Set-Cookie header."""
    return set_cookie_of(response).split(";", 1)[0].removeprefix("session=")


def interface_of(app: Quart) -> CookieSessionInterface:
    """Return the app's session interface."""
    interface = app.session_interface
    assert isinstance(interface, CookieSessionInterface)
    return interface


async def test_requests_without_a_cookie_build_no_serializer(app: Quart) -> None:
    client = app.test_client()
    for path in ("/hello", "/", "/static/style.css"):
        assert (await client.get(path)).status_code == 200
    # No cookie to read, none to write (the login form would write one, for its CSRF token).
    assert interface_of(app).serializers == {}
    response = await client.get("/hello")
    assert "Set-Cookie" not in response.headers


async def test_a_login_cookie_is_quarts_own_cookie(app: Quart, auth: AuthActions) -> None:
    response = await auth.login()
    assert response.status_code == 302
    cookie = cookie_value(response)
    # Quart's own interface reads the cookie this one wrote: the format is unchanged.
    plain = SecureCookieSessionInterface().get_signing_serializer(app)
    assert plain is not None
    assert "session_id" in plain.loads(cookie)
    # One serializer for the one key, reused by every request after.
    assert len(interface_of(app).serializers) == 1
    assert "Log Out" in await page_text(await auth.client.get("/"))
    assert len(interface_of(app).serializers) == 1


async def test_a_rotated_key_gets_its_own_serializer(app: Quart, auth: AuthActions) -> None:
    cookie = cookie_value(await auth.login())
    old_key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "a-new-key-" + "x" * 32
    client = app.test_client()
    # Signed with the old key and no fallback: anonymous.
    page = await page_text(await client.get("/", headers={"Cookie": f"session={cookie}"}))
    assert "Log Out" not in page
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    page = await page_text(await client.get("/", headers={"Cookie": f"session={cookie}"}))
    assert "Log Out" in page
    assert len(interface_of(app).serializers) == 3


@pytest.mark.parametrize("secret_key", [None, ""])
@pytest.mark.parametrize("cookie", [{}, {"Cookie": "session=x"}])
async def test_without_a_secret_key_the_session_is_null(
    app_config: dict[str, Any], secret_key: str | None, cookie: dict[str, str]
) -> None:
    app = create_app({**app_config, "TESTING": True})
    app.config["SECRET_KEY"] = secret_key
    interface = interface_of(app)
    assert interface.get_signing_serializer(app) is None
    async with app.test_request_context("/hello", headers=cookie):
        # Quart's null session: it refuses writes, it never signs with a missing key.
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined, unused-ignore]
    async with app.test_app():
        response = await app.test_client().get("/hello", headers=cookie)
    assert response.status_code == 200
    assert interface.serializers == {}
