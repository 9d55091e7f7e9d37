"""Every form's body is bounded, in bytes and in fields, before anything parses it."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import pytest
from quart import Quart
from werkzeug.exceptions import RequestEntityTooLarge

from flaskr_async.forms import BODY_MAX_BYTES
from flaskr_async.forms import CREDENTIALS
from flaskr_async.forms import LARGEST_FORM_BYTES
from flaskr_async.forms import LoginForm
from flaskr_async.forms import PasswordChangeForm
from flaskr_async.forms import PostForm
from flaskr_async.forms import RegisterForm
from flaskr_async.middleware.body_limits import FORM_LIMITS
from flaskr_async.middleware.body_limits import LimitedBody
from tests.helpers import AuthActions
from tests.helpers import page_text
from tests.helpers import row_count
from tests.helpers import serving

pytestmark = pytest.mark.sqlite_only  # no database work happens before a refusal

PATHS = {
    "auth.register": "/auth/register",
    "auth.login": "/auth/login",
    "auth.logout": "/auth/logout",
    "auth.change_password": "/auth/password",
    "auth.end_other_sessions": "/auth/sessions/end-others",
    "blog.create": "/create",
    "blog.update": "/1/update",
    "blog.delete": "/1/delete",
}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def test_every_post_route_has_a_limit(app: Quart) -> None:
    posted = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}
    # A new POST form: its limits in FORM_LIMITS (flaskr_async/middleware/body_limits.py), its URL
    # in PATHS above.
    assert posted == set(FORM_LIMITS) == set(PATHS), "a POST route without its form limits"


async def test_each_limit_counts_the_forms_fields(csrf_config: dict[str, Any]) -> None:
    async with serving(csrf_config) as app, app.test_request_context("/", method="POST"):
        for endpoint, form_class in (
            ("auth.register", RegisterForm),
            ("auth.login", LoginForm),
            ("blog.create", PostForm),
            ("blog.update", PostForm),
        ):
            form = await form_class.create_form()
            assert FORM_LIMITS[endpoint].max_fields == len(form._fields), endpoint
        # The password form also sends its user's name, hidden, for password managers.
        form = await PasswordChangeForm.create_form()
        assert FORM_LIMITS["auth.change_password"].max_fields == len(form._fields) + 1
        for endpoint in ("auth.logout", "auth.end_other_sessions", "blog.delete"):  # a CSRF token
            assert FORM_LIMITS[endpoint].max_fields == 1


async def post_raw(app: Quart, path: str, body: bytes, headers: dict[str, str]) -> Any:
    """Post a raw body as a logged-in user (logout, create, update, delete need one)."""
    client = app.test_client()
    await AuthActions(client).login()
    return await client.post(path, data=body, headers=headers)


@pytest.mark.parametrize("endpoint", PATHS)
async def test_a_body_over_the_forms_size_is_413(app: Quart, endpoint: str) -> None:
    size = FORM_LIMITS[endpoint].max_bytes + 1
    response = await post_raw(app, PATHS[endpoint], b"a=" + b"x" * (size - 2), URLENCODED)
    assert response.status_code == 413
    assert "at most" in await page_text(response)


@pytest.mark.parametrize("endpoint", PATHS)
async def test_more_fields_than_the_form_has_is_413(app: Quart, endpoint: str) -> None:
    fields = FORM_LIMITS[endpoint].max_fields + 1
    body = "&".join(f"f{n}=" for n in range(fields)).encode()
    response = await post_raw(app, PATHS[endpoint], body, URLENCODED)
    assert response.status_code == 413
    assert "fields" in await page_text(response)


@pytest.mark.parametrize("endpoint", PATHS)
async def test_too_many_multipart_parts_is_413(app: Quart, endpoint: str) -> None:
    parts = FORM_LIMITS[endpoint].max_fields + 1
    body = "".join(
        f'--b\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n' for n in range(parts)
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = await post_raw(app, PATHS[endpoint], (body + "--b--\r\n").encode(), headers)
    assert response.status_code == 413


async def test_the_many_field_attack_is_refused_before_parsing(app: Quart) -> None:
    body = "&".join(f"f{n}=" for n in range(100_000)).encode()  # ~0.9 MB, as measured
    client = app.test_client()
    response = await client.post("/auth/login", data=body, headers=URLENCODED)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("path", "form"),
    [
        # A 4-byte letter PRECIS allows in a username ("𝕏" is a compatibility character).
        ("/auth/register", {"username": "\U00020000" * 150, "password": "𝕏" * 1024}),
        ("/create", {"title": "𝕏" * 200, "body": "𝕏" * (BODY_MAX_BYTES // 4)}),
        ("/1/update", {"title": "𝕏" * 200, "body": "𝕏" * (BODY_MAX_BYTES // 4)}),
    ],
)
async def test_the_largest_valid_forms_fit(
    app_config: dict[str, Any], path: str, form: dict[str, str]
) -> None:
    # Each character is 4 bytes of UTF-8, each byte sent as %XX: the widest a form can be;
    # it fits the least MAX_CONTENT_LENGTH the settings accept.
    async with serving({**app_config, "MAX_CONTENT_LENGTH": LARGEST_FORM_BYTES}) as app:
        client = app.test_client()
        await AuthActions(client).login()
        body = urlencode({**form, "csrf_token": "t" * 90}).encode()
        response = await client.post(path, data=body, headers=URLENCODED)
        assert response.status_code == 302, response.status_code


async def test_the_largest_password_change_fits(app: Quart) -> None:
    client = app.test_client()
    await AuthActions(client).login()
    widest = "\U00020000" * 1024  # 4 bytes of UTF-8 each, each byte sent as %XX
    form = {"current_password": widest, "new_password": widest, "username": "test"}
    body = urlencode({**form, "csrf_token": "t" * 90}).encode()
    response = await client.post("/auth/password", data=body, headers=URLENCODED)
    assert response.status_code == 200  # read whole, and checked: the wrong current password
    assert "Incorrect password." in await page_text(response)


async def test_a_refused_form_writes_nothing(app: Quart) -> None:
    users = await row_count(app, "user")
    body = urlencode({"username": "new", "password": "a-long-password", "extra": "1", "more": "2"})
    response = await app.test_client().post(
        "/auth/register", data=body.encode(), headers=URLENCODED
    )
    assert response.status_code == 413
    assert await row_count(app, "user") == users


async def test_a_forms_limit_never_raises_a_lower_body_limit() -> None:
    # MAX_CONTENT_LENGTH is never below a form's limit (settings.py), but a body may come with
    # a lower limit of its own: the form's limit keeps it.
    body = LimitedBody(None, 100)
    body.lower_limit(CREDENTIALS.max_bytes)
    body.set_result(b"x" * 101)
    with pytest.raises(RequestEntityTooLarge):
        await body


async def test_other_body_types_are_not_read_as_forms(app: Quart) -> None:
    response = await app.test_client().post(
        "/auth/login",
        data=b"username=test&password=test&a&b&c",
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 200
    assert "Username is required." in await page_text(response)


async def post_in_chunks(app: Quart, path: str, chunks: list[bytes]) -> tuple[int, str]:
    """Post a urlencoded body in ASGI messages, with no Content-Length; return status, page."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", URLENCODED["Content-Type"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []
    responded = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await responded.wait()  # as a server does: the client goes once answered
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            responded.set()

    await app(scope, receive, send)  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body.decode()


@pytest.mark.parametrize("chunks", [3, 30])
async def test_a_chunked_body_over_the_forms_size_is_413(app: Quart, chunks: int) -> None:
    size = FORM_LIMITS["auth.login"].max_bytes + 1
    piece = size // chunks + 1
    status, page = await post_in_chunks(app, "/auth/login", [b"a=" + b"x" * piece] * chunks)
    assert status == 413
    assert "data may be at most" in page  # the form's own message, not Quart's bare 413


async def test_a_chunked_body_within_the_forms_size_is_read(app: Quart) -> None:
    status, page = await post_in_chunks(app, "/auth/login", [b"username=test", b"&password=x"])
    assert status == 200
    assert "Incorrect username or password." in page


@pytest.mark.parametrize("endpoint", PATHS)
async def test_a_declared_length_over_the_limit_is_refused_unread(
    app: Quart, endpoint: str
) -> None:
    # The Content-Length alone decides: the body is never waited for.
    declared = str(FORM_LIMITS[endpoint].max_bytes + 1)
    headers = {**URLENCODED, "Content-Length": declared}
    response = await post_raw(app, PATHS[endpoint], b"a=b", headers)
    assert response.status_code == 413
    assert "at most" in await page_text(response)
