"""Post ids in URLs: ASCII digits in one spelling, every other one a 404."""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from quart import Quart
from quart.testing import QuartClient
from werkzeug.exceptions import NotFound
from werkzeug.routing import MapAdapter

from flaskr_async import create_app
from flaskr_async.converters import MAX_ID
from tests.helpers import AuthActions
from tests.helpers import fetch_one
from tests.servers import TEST_SECRET_KEY

# Every character Unicode gives a digit value to (decimal, superscript, circled...), but ASCII's.
OTHER_DIGITS = [
    c
    for c in map(chr, range(sys.maxunicode + 1))
    if unicodedata.digit(c, None) is not None and not c.isascii()
]

# Other spellings of post 1 (or of no post at all), each a 404 on every id route.
NON_CANONICAL_IDS = {
    "leading zero": "01",
    "zeros": "0001",
    "plus": "+1",
    "minus": "-1",
    "zero": "0",
    "space before": " 1",
    "space after": "1 ",
    "underscore": "1_0",
    "exponent": "1e0",
    "hex": "0x1",
    "decimal point": "1.0",
    "arabic-indic one": "\u0661",
    "full-width one": "\uff11",
    "ascii then arabic-indic": "1\u0661",
    "superscript one": "\u00b9",
    "past the largest id": str(MAX_ID + 1),
    "twenty digits": "1" * 20,
}


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> MapAdapter:
    """Return the app's URL map bound to a host, to route paths without serving."""
    database = tmp_path_factory.mktemp("urls") / "unused.sqlite"
    app = create_app({"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "DATABASE": str(database)})
    return app.url_map.bind("localhost")


def route(urls: MapAdapter, path: str, method: str = "GET") -> tuple[str, dict[str, Any]] | None:
    """Return the endpoint and arguments a request for the path reaches, or None for a 404."""
    try:
        endpoint, args = urls.match(path, method=method)
    except NotFound:
        return None
    return str(endpoint), dict(args)


@settings(max_examples=300, deadline=None)
@given(post_id=st.integers(1, MAX_ID))
def test_ascii_ids_route_to_their_post(urls: MapAdapter, post_id: int) -> None:
    assert route(urls, f"/{post_id}/update") == ("blog.update", {"id": post_id})
    assert urls.build("blog.update", {"id": post_id}) == f"/{post_id}/update"


@settings(max_examples=500, deadline=None)
@given(text=st.text(st.sampled_from(["0", "1", "9", "+", "-", " ", *OTHER_DIGITS]), min_size=1))
def test_only_canonical_ascii_ids_route(urls: MapAdapter, text: str) -> None:
    canonical = re.fullmatch("[1-9][0-9]*", text) is not None and int(text) <= MAX_ID
    found = route(urls, f"/{quote(text)}/update")
    assert found == (("blog.update", {"id": int(text)}) if canonical else None)


def test_no_other_digit_is_routed(urls: MapAdapter) -> None:
    for digit in OTHER_DIGITS:
        for path in (f"/{quote(digit)}", f"/1{quote(digit)}", f"/{quote(digit)}1"):
            assert route(urls, f"{path}/update") is None, digit
            assert route(urls, f"{path}/delete", method="POST") is None, digit


async def post_one_exists(app: Quart) -> bool:
    """Tell whether the fixture post is still there."""
    return await fetch_one(app, "SELECT id FROM post WHERE id = 1") is not None


async def test_no_other_digit_one_reaches_post_one(
    app: Quart, client: QuartClient, auth: AuthActions
) -> None:
    await auth.login()
    for digit in (c for c in OTHER_DIGITS if unicodedata.digit(c) == 1):
        path = quote(digit)
        assert (await client.get(f"/{path}/update")).status_code == 404, digit
        assert (await client.post(f"/{path}/delete")).status_code == 404, digit
    assert await post_one_exists(app)


@pytest.mark.parametrize("post_id", NON_CANONICAL_IDS.values(), ids=NON_CANONICAL_IDS.keys())
async def test_non_canonical_ids_are_404(
    app: Quart, client: QuartClient, auth: AuthActions, post_id: str
) -> None:
    await auth.login()
    path = quote(post_id)
    assert (await client.get(f"/{path}/update")).status_code == 404
    assert (await client.post(f"/{path}/update", form={"title": "x"})).status_code == 404
    assert (await client.post(f"/{path}/delete")).status_code == 404
    assert await post_one_exists(app)
