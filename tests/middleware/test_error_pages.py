"""Every HTTP error the app answers is its own page, in its own words, never werkzeug's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from markupsafe import escape
from quart import Quart
from quart import abort
from quart.testing import QuartClient
from werkzeug.exceptions import default_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from flaskr_async import create_app
from flaskr_async.middleware.error_pages import DESCRIPTIONS
from tests.helpers import load_test_data

pytestmark = pytest.mark.sqlite_only  # no database work of its own


@pytest.fixture
async def raising_app(app_config: dict[str, Any]) -> AsyncIterator[Quart]:
    """Serve the app with two more routes: one aborts with any status, one crashes."""
    # Quart re-raises a crash in the test client while testing unless told not to.
    app = create_app({**app_config, "PROPAGATE_EXCEPTIONS": False})

    @app.route("/raise/<int:code>")
    async def raise_status(code: int) -> str:
        abort(code)

    @app.route("/crash")
    async def crash() -> str:
        raise RuntimeError("a bug")

    async with app.test_app():
        await load_test_data(app)
        yield app


# (status, how a request gets it from the app's own routes)
REAL_ERRORS = [
    (403, "GET", "/1/update", "other"),  # post 1 is test's
    (404, "GET", "/no/such/page", None),
    (405, "DELETE", "/", None),
    (416, "GET", "/static/style.css", None),
    (500, "GET", "/crash", None),
]


@pytest.mark.parametrize(("code", "method", "path", "user"), REAL_ERRORS)
async def test_every_error_of_the_app_is_its_own_page_in_its_own_words(
    raising_app: Quart, code: int, method: str, path: str, user: str | None
) -> None:
    client = raising_app.test_client()
    assert isinstance(client, QuartClient)
    if user is not None:
        form = {"username": user, "password": user}
        assert (await client.post("/auth/login", form=form)).status_code == 302
    headers = {"Range": "bytes=99999999-"} if code == 416 else {}
    response = await client.open(path, method=method, headers=headers)
    assert response.status_code == code
    assert_own_page(await response.get_data(as_text=True), code)


@pytest.mark.parametrize("code", sorted(code for code in default_exceptions if code >= 400))
async def test_any_status_is_the_app_s_page_without_werkzeug_s_words(
    raising_app: Quart, code: int
) -> None:
    response = await raising_app.test_client().get(f"/raise/{code}")
    assert response.status_code == code
    assert_own_page(await response.get_data(as_text=True), code)


def assert_own_page(page: str, code: int) -> None:
    """Check a page is templates/error.html in the site's layout, without werkzeug's text."""
    werkzeug = default_exceptions[code]
    name = str(escape(HTTP_STATUS_CODES[code]))  # as Jinja escapes it ("I'm a teapot")
    assert f"<h1>{code} {name}</h1>" in page
    assert '<a class="brand" href="/">Flaskr</a>' in page  # the site's navigation
    assert str(escape(str(werkzeug.description))) not in page
    if code in DESCRIPTIONS:
        assert str(escape(DESCRIPTIONS[code])) in page
    else:
        assert f"This request could not be answered ({code} {name})." in page


# (what is wrong, request headers and path) refused at the boundary, before Quart runs
BOUNDARY_REFUSALS = [
    ("a Host this site does not serve", {"Host": "evil.example"}, "/hello"),
    ("a malformed path", {}, "/%zz"),
    ("ambiguous framing", {"Content-Length": "5", "Transfer-Encoding": "chunked"}, "/hello"),
]


@pytest.mark.parametrize(("problem", "headers", "path"), BOUNDARY_REFUSALS)
async def test_the_boundary_s_refusals_are_the_app_s_page_too(
    raising_app: Quart, problem: str, headers: dict[str, str], path: str
) -> None:
    response = await raising_app.test_client().get(path, headers=headers)
    assert response.status_code == 400, problem
    assert response.headers["Connection"] == "close"
    page = await response.get_data(as_text=True)
    assert "<h1>400 Bad Request</h1>" in page
    assert '<a class="brand" href="/">Flaskr</a>' in page  # the site's navigation, anonymous
    assert "<p>The request was refused: " in page
    assert page.count("<p>") == 2  # the refusal and the link back, nothing else
