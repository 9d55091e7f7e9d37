"""User text quoted in a sentence: shortened between characters, isolated when right-to-left."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape
from quart import Quart
from quart import Response
from quart.testing import QuartClient

from flaskr_async.db import current_database
from flaskr_async.quoting import ELLIPSIS
from flaskr_async.quoting import QUOTE_MAX
from flaskr_async.quoting import quoted
from flaskr_async.quoting import shortened
from tests.helpers import AuthActions
from tests.helpers import page_text
from tests.helpers import set_cookie_of

FSI, PDI = "\u2068", "\u2069"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji joined from three


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", "short"),
        ("x" * QUOTE_MAX, "x" * QUOTE_MAX),  # at the limit: whole
        ("x" * (QUOTE_MAX + 1), "x" * (QUOTE_MAX - 1) + ELLIPSIS),
        ("\u4e00" * 3000, "\u4e00" * (QUOTE_MAX - 1) + ELLIPSIS),  # a legacy title
        # The cut falls inside "e" + combining acute: the whole "é" goes.
        ("x" * (QUOTE_MAX - 2) + "e\u0301" + "y" * 9, "x" * (QUOTE_MAX - 2) + ELLIPSIS),
        # Inside a joined emoji: all of it goes, not its tail.
        ("x" * (QUOTE_MAX - 3) + FAMILY + "y", "x" * (QUOTE_MAX - 3) + ELLIPSIS),
        # Between a thumb and its skin tone, and between a heart and its emoji selector.
        ("x" * (QUOTE_MAX - 2) + "\U0001f44d\U0001f3fd" + "y", "x" * (QUOTE_MAX - 2) + ELLIPSIS),
        ("x" * (QUOTE_MAX - 2) + "\u2764\ufe0f" + "y", "x" * (QUOTE_MAX - 2) + ELLIPSIS),
        # Between the halves of a surrogate pair (text decoded with surrogatepass).
        ("x" * (QUOTE_MAX - 2) + "\ud83d\ude00" + "y", "x" * (QUOTE_MAX - 2) + ELLIPSIS),
        # One character with a long tail of marks: nothing whole fits.
        ("e" + "\u0301" * 200, ELLIPSIS),
    ],
)
def test_shortened(text: str, expected: str) -> None:
    assert shortened(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain title", "plain title"),  # left-to-right text reads exactly as typed
        ("\u202eevil", "evil"),  # an override cannot reverse the sentence after it
        ("a\u2069b\u2067c", "abc"),  # nor can an isolate closing ours early
        ("\u05e9\u05dc\u05d5\u05dd", FSI + "\u05e9\u05dc\u05d5\u05dd" + PDI),  # Hebrew
        ("\u0645\u0631\u062d\u0628\u0627 1", FSI + "\u0645\u0631\u062d\u0628\u0627 1" + PDI),
        ("\u202e" + "x" * 200, "x" * (QUOTE_MAX - 1) + ELLIPSIS),
    ],
)
def test_quoted(text: str, expected: str) -> None:
    assert quoted(text) == expected


@given(st.text(max_size=300))
def test_quoted_text_is_bounded_and_balanced(text: str) -> None:
    result = quoted(text)
    assert len(result) <= QUOTE_MAX + 2  # the isolate's two characters
    controls = [char for char in result if unicodedata.bidirectional(char) in ("FSI", "PDI")]
    assert controls in ([], [FSI, PDI])
    assert not any(
        unicodedata.bidirectional(char) in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI")
        for char in result
    )


LONG_NAME = "\u4e00" * 150  # the longest name registration takes, 3 bytes a character
LONG_TITLE = "\U0001f600" * 200  # the longest title the form takes, 4 bytes a character
LEGACY_TITLE = "\u9fff" * 3000  # an older Flaskr database's title: no limit at all
COOKIE_MAX = 4096  # browsers drop a larger cookie (RFC 6265 section 6.1's least maximum)


async def add_legacy_post(app: Quart) -> int:
    """Insert a post with a title longer than the form allows, as an older database has."""
    async with app.app_context():
        async with current_database().transaction() as tx:
            row = await tx.fetch_one(
                "INSERT INTO post (title, body, author_id) VALUES (?, '', 1) RETURNING id",
                (LEGACY_TITLE,),
            )
    assert row is not None
    return int(row["id"])


async def register_twice(client: QuartClient) -> Response:
    """Register the long name, then its twin: the second says it is taken, on its page."""
    form = {"username": LONG_NAME, "password": "a-long-password"}
    assert (await client.post("/auth/register", form=form)).status_code == 302
    return await client.post("/auth/register", form=form)


# Every message that quotes user text, with the longest text it can quote:
# (the request that flashes it, the message's words around the quote).
MESSAGES = {
    "create": ('Post "{}" was published.', LONG_TITLE),
    "update": ('Post "{}" was saved.', LONG_TITLE),
    "delete": ('Post "{}" was deleted.', LEGACY_TITLE),
    "register": ("Registered as {}. Please log in.", LONG_NAME),
}


async def flash_with_long_text(app: Quart, client: QuartClient, action: str) -> Response:
    """Make the action flash its message quoting the longest text; return its response."""
    if action == "register":
        return await client.post(
            "/auth/register", form={"username": LONG_NAME, "password": "a-long-password"}
        )
    await AuthActions(client).login()
    if action == "create":
        return await client.post("/create", form={"title": LONG_TITLE, "body": ""})
    if action == "update":
        return await client.post("/1/update", form={"title": LONG_TITLE, "body": ""})
    return await client.post(f"/{await add_legacy_post(app)}/delete")


@pytest.mark.parametrize("action", MESSAGES)
async def test_each_message_quotes_user_text_shortened(
    app: Quart, client: QuartClient, action: str
) -> None:
    response = await flash_with_long_text(app, client, action)
    assert len(set_cookie_of(response)) < COOKIE_MAX
    shown = response if response.status_code == 200 else await client.get("/")
    sentence, text = MESSAGES[action]
    assert str(escape(sentence.format(quoted(text)))) in await page_text(shown)
    assert quoted(text).endswith(ELLIPSIS)


async def test_a_taken_name_is_named_whole_as_the_contract_words_it(client: QuartClient) -> None:
    """The longest name the form takes fits the cookie whole: the message quotes it as it is."""
    response = await register_twice(client)
    assert len(set_cookie_of(response)) < COOKIE_MAX
    sentence = f"User {LONG_NAME} is already registered."
    assert str(escape(sentence)) in await page_text(response)


async def test_messages_never_shown_do_not_pile_up(app: Quart, client: QuartClient) -> None:
    """A client that never follows the redirects keeps only the newest two messages."""
    await AuthActions(client).login()
    sizes = []
    for number in range(10):
        title = f"{number}{LONG_TITLE[1:]}"
        response = await client.post("/create", form={"title": title, "body": ""})
        sizes.append(len(set_cookie_of(response)))
    assert max(sizes) < COOKIE_MAX
    page = await page_text(await client.get("/"))
    shown = re.findall(r'<div class="flash info" role="status">Post &#34;(\d)', page)
    assert shown == ["8", "9"]


HEBREW_NAME = "\u05e9\u05dc\u05d5\u05dd"
RIGHT_TO_LEFT_TITLE = "\u202e" + "\u05d0" * 100  # an override, then more than is quoted


async def edit_page(app: Quart, client: QuartClient) -> str:
    """Return the edit page of a post whose long title overrides the text direction."""
    await AuthActions(client).login()
    async with app.app_context():
        async with current_database().transaction() as tx:
            await tx.execute("UPDATE post SET title = ? WHERE id = 1", (RIGHT_TO_LEFT_TITLE,))
    return await page_text(await client.get("/1/update"))


async def index_by_hebrew_name(app: Quart, client: QuartClient) -> str:
    """Return the index with a post by a user whose name is written right to left."""
    form = {"username": HEBREW_NAME, "password": "a-long-password"}
    await client.post("/auth/register", form=form)
    await client.post("/auth/login", form=form)
    await client.post("/create", form={"title": "t", "body": ""})
    return await page_text(await client.get("/"))


# Where a page shows user text inside a sentence or heading: how the page is made, and what
# it must hold (the text isolated from its sentence, and shortened).
SHOWN_IN_SENTENCES = {
    "edit page heading": (
        edit_page,
        f'<h1>Edit "<bdi>{shortened(RIGHT_TO_LEFT_TITLE)}</bdi>"</h1>',
    ),
    "edit page title": (edit_page, f'<title>Edit "{quoted(RIGHT_TO_LEFT_TITLE)}" - Flaskr'),
    "index byline": (index_by_hebrew_name, f"by {quoted(HEBREW_NAME)} on "),
}


@pytest.mark.parametrize("place", SHOWN_IN_SENTENCES)
async def test_user_text_in_a_sentence_is_isolated(
    app: Quart, client: QuartClient, place: str
) -> None:
    make_page, expected = SHOWN_IN_SENTENCES[place]
    page = await make_page(app, client)
    assert expected in page
