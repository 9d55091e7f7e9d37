"""The blog: index and pagination, create, update, delete, and who may do what."""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime

import pytest
from quart import Quart
from quart.testing import QuartClient

from flaskr_async import blog
from flaskr_async.db import Row
from flaskr_async.db import current_database
from flaskr_async.db import get_db
from tests.helpers import AuthActions
from tests.helpers import page_text
from tests.helpers import row_count
from tests.helpers import serving


async def test_index(client: QuartClient, auth: AuthActions) -> None:
    page = await page_text(await client.get("/"))
    assert "Log In" in page
    assert "Register" in page

    await auth.login()
    page = await page_text(await client.get("/"))
    assert "Log Out" in page
    assert "test title" in page
    assert "by test on 2018-01-01" in page
    assert "test\nbody" in page
    assert 'href="/1/update"' in page
    assert 'href="/create"' in page
    assert page.count("<article") == 1
    assert "(edited)" not in page and "updated" not in page


async def test_index_escapes_html(client: QuartClient, auth: AuthActions) -> None:
    await auth.login()
    await client.post("/create", form={"title": "<script>x</script>", "body": "<b>bold</b>"})
    page = await page_text(await client.get("/"))
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<script>x" not in page


@pytest.mark.parametrize("path", ["/2/update", "/2/delete"])
async def test_exists_required(client: QuartClient, auth: AuthActions, path: str) -> None:
    await auth.login()
    response = await client.post(path)
    assert response.status_code == 404
    assert "Post id 2 doesn&#39;t exist." in await page_text(response)


@pytest.mark.parametrize(
    "path", ["/0/update", "/-1/update", "/9223372036854775808/update", "/abc/delete", "/1.5/update"]
)
async def test_ids_out_of_range_are_404(client: QuartClient, auth: AuthActions, path: str) -> None:
    await auth.login()
    assert (await client.post(path)).status_code == 404


async def test_largest_id_is_a_missing_post(client: QuartClient, auth: AuthActions) -> None:
    await auth.login()
    response = await client.get("/9223372036854775807/update")
    assert response.status_code == 404
    assert "Post id 9223372036854775807 doesn&#39;t exist." in await page_text(response)


async def test_author_required(app: Quart, client: QuartClient, auth: AuthActions) -> None:
    async with app.app_context():
        async with current_database().lease() as db, db.transaction():
            await db.execute("UPDATE post SET author_id = 2 WHERE id = 1")

    await auth.login()
    assert (await client.post("/1/update")).status_code == 403
    assert (await client.post("/1/delete")).status_code == 403
    assert 'href="/1/update"' not in await page_text(await client.get("/"))
    assert await row_count(app, "post") == 1


async def test_create(client: QuartClient, auth: AuthActions, app: Quart) -> None:
    await auth.login()
    assert (await client.get("/create")).status_code == 200
    response = await client.post("/create", form={"title": "created", "body": ""})
    assert response.headers["Location"] == "/"
    assert await row_count(app, "post") == 2


async def test_create_without_body_field_stores_empty_body(
    client: QuartClient, auth: AuthActions, app: Quart
) -> None:
    await auth.login()
    response = await client.post("/create", form={"title": "no body"})
    assert response.headers["Location"] == "/"
    async with app.app_context():
        async with current_database().lease() as db:
            post = await db.fetch_one("SELECT body FROM post WHERE title = 'no body'")
    assert post is not None and post["body"] == ""


async def test_update(client: QuartClient, auth: AuthActions, app: Quart) -> None:
    await auth.login()
    page = await page_text(await client.get("/1/update"))
    assert 'value="test title"' in page
    response = await client.post("/1/update", form={"title": "updated", "body": "new"})
    assert response.headers["Location"] == "/"
    async with app.app_context():
        async with current_database().lease() as db:
            post = await db.fetch_one("SELECT title, body, updated FROM post WHERE id = 1")
    assert post is not None
    assert (post["title"], post["body"]) == ("updated", "new")
    assert post["updated"] > datetime(2018, 1, 1, tzinfo=UTC)  # the post's created time
    await client.post("/create", form={"title": "never edited", "body": ""})
    # Marked edited after a reload, as the live index marks it while open.
    page = await page_text(await client.get("/"))
    assert re.findall(r'<article class="([^"]*)".*?<div class="about">(.*?)</div>', page, re.S) == [
        ("post", "by test on " + datetime.now(UTC).strftime("%Y-%m-%d")),
        ("post updated", 'by test on 2018-01-01 <span class="edited">(edited)</span>'),
    ]


@pytest.mark.parametrize(
    ("title", "body", "message"),
    [
        ("", "", "Title is required."),
        ("  ", "", "Title is required."),
        ("t" * 201, "", "Title must be at most 200 characters."),
        ("t", "b" * (64 * 1024 + 1), "Body must be at most 64 KiB."),
        ("t", "é" * (32 * 1024 + 1), "Body must be at most 64 KiB."),
        ("t\x00", "", "Title must not contain NUL characters."),
        ("t", "\x00", "Body must not contain NUL characters."),
        # Nothing visible is no title: invisible characters, bidi controls, blank letters.
        ("\u200b", "", "Title is required."),
        ("\u202e", "", "Title is required."),
        ("\u200b\u2060\ufeff \u00a0", "", "Title is required."),
        ("\u3164\u2800\ufe0f", "", "Title is required."),
        # Default-ignorable beyond the short list: selectors 17-256, reserved, tags; a lone mark.
        ("\U000e0100\U000e01ef", "", "Title is required."),
        ("\u2065\ufff0\U000e0080", "", "Title is required."),
        ("\u0301\u20dd", "", "Title is required."),
        ("\x07", "", "Title is required."),
        # C0 and C1 controls: a title holds none, a body only line breaks and tabs.
        ("t\x07", "", "Title must not contain control characters."),
        ("\x1b[31mred", "", "Title must not contain control characters."),
        ("t\x7f", "", "Title must not contain control characters."),
        ("t\x85", "", "Title must not contain control characters."),
        ("t\x9b1m", "", "Title must not contain control characters."),
        ("two\nlines", "", "Title must not contain control characters."),
        ("t\tt", "", "Title must not contain control characters."),
        ("t", "ring\x07", "Body must not contain control characters."),
        ("t", "\x07", "Body must not contain control characters."),
        ("t", "a\x9bb", "Body must not contain control characters."),
    ],
)
@pytest.mark.parametrize("path", ["/create", "/1/update"])
async def test_create_update_validate(
    client: QuartClient,
    auth: AuthActions,
    app: Quart,
    path: str,
    title: str,
    body: str,
    message: str,
) -> None:
    await auth.login()
    response = await client.post(path, form={"title": title, "body": body})
    assert response.status_code == 200
    assert message in await page_text(response)
    async with app.app_context():
        async with current_database().lease() as db:
            posts = await db.fetch_all("SELECT title, body FROM post")
    assert [(post["title"], post["body"]) for post in posts] == [("test title", "test\nbody")]


@pytest.mark.parametrize(
    ("title", "body", "stored_body"),
    [
        ("t", "line\r\nbreaks\tand tabs\n", "line\r\nbreaks\tand tabs\n"),
        ("t", "\r\n \t\u200b\n", ""),  # nothing visible: an empty body
        ("\u202eevil", "", ""),  # a bidi control is allowed; pages and messages isolate it
        ("\u05e9\u05dc\u05d5\u05dd", "\u05d2\u05d5\u05e3", "\u05d2\u05d5\u05e3"),
        ("e\u0301", "\U0001f600", "\U0001f600"),
    ],
)
@pytest.mark.parametrize("path", ["/create", "/1/update"])
async def test_create_update_store_what_shows(
    client: QuartClient,
    auth: AuthActions,
    app: Quart,
    path: str,
    title: str,
    body: str,
    stored_body: str,
) -> None:
    await auth.login()
    response = await client.post(path, form={"title": title, "body": body})
    assert response.headers["Location"] == "/"
    async with app.app_context():
        async with current_database().lease() as db:
            post = await db.fetch_one("SELECT title, body FROM post ORDER BY id DESC")
    assert post is not None
    assert (post["title"], post["body"]) == (title, stored_body)


async def test_body_and_title_at_their_limits(
    client: QuartClient, auth: AuthActions, app: Quart
) -> None:
    await auth.login()
    response = await client.post("/create", form={"title": "t" * 200, "body": "b" * 64 * 1024})
    assert response.headers["Location"] == "/"
    assert await row_count(app, "post") == 2


async def test_delete(client: QuartClient, auth: AuthActions, app: Quart) -> None:
    await auth.login()
    response = await client.post("/1/delete")
    assert response.headers["Location"] == "/"
    assert await row_count(app, "post") == 0


async def test_delete_needs_post(client: QuartClient, auth: AuthActions) -> None:
    await auth.login()
    assert (await client.get("/1/delete")).status_code == 405


def article_titles(page: str) -> list[str]:
    """Return the post titles of an index page, top to bottom."""
    return re.findall(r"<h2>(post \d+)</h2>", page)


def link(page: str, rel: str) -> str | None:
    """Return the href of the page link with this rel, if any."""
    match = re.search(rf'rel="{rel}" href="([^"]+)"', page)
    return match.group(1).replace("&amp;", "&") if match else None


async def test_pagination_walks_every_post_once(app_config: dict[str, object]) -> None:
    async with serving({**app_config, "POSTS_PER_PAGE": 3}) as app:
        async with app.app_context():
            async with current_database().lease() as db, db.transaction():
                await db.execute("DELETE FROM post")
                for n in range(1, 8):
                    await db.execute(
                        "INSERT INTO post (title, body, author_id) VALUES (?, '', 1)",
                        (f"post {n}",),
                    )
        client = app.test_client()
        page = await page_text(await client.get("/"))
        seen = [article_titles(page)]
        assert link(page, "prev") is None
        while (older := link(page, "next")) is not None:
            page = await page_text(await client.get(older))
            seen.append(article_titles(page))
        assert seen == [
            ["post 7", "post 6", "post 5"],
            ["post 4", "post 3", "post 2"],
            ["post 1"],
        ]
        back = []
        while (newer := link(page, "prev")) is not None:
            page = await page_text(await client.get(newer))
            back.append(article_titles(page))
        assert back == [["post 4", "post 3", "post 2"], ["post 7", "post 6", "post 5"]]
        assert link(page, "next") == "/?before=6"  # "post 5" has id 6: id 1 was deleted
        assert article_titles(await page_text(await client.get("/?after=8"))) == []
        assert article_titles(await page_text(await client.get("/?before=2"))) == []


@pytest.mark.parametrize(
    "query",
    [
        "before=x",
        "after=-1",
        "before=0",
        "after=99999999999999999999",
        "before=%EF%BC%91",
        f"after={'9' * 5000}",  # beyond the digits int() accepts
    ],
)
async def test_bad_page_cursor_is_400(client: QuartClient, query: str) -> None:
    response = await client.get(f"/?{query}")
    assert response.status_code == 400
    assert "must be a post id" in await page_text(response)


async def test_empty_index(client: QuartClient, auth: AuthActions) -> None:
    await auth.login()
    await client.post("/1/delete")
    assert "No posts yet." in await page_text(await client.get("/"))


# Each write of a post the view read first: (path, form).
WRITES_AFTER_READ = {
    "update": ("/1/update", {"title": "late edit", "body": "b"}),
    "delete": ("/1/delete", {}),
}


@pytest.mark.parametrize("write", WRITES_AFTER_READ)
async def test_post_deleted_after_its_read_is_404(
    client: QuartClient,
    auth: AuthActions,
    app: Quart,
    monkeypatch: pytest.MonkeyPatch,
    write: str,
) -> None:
    """Another request deletes the post between this one's read and its write: 404, no event.

    Before, PostgreSQL's READ COMMITTED let the UPDATE find no row and the view still said
    "Post ... was saved." and recorded an "updated" event after the "deleted" one.
    """
    read_post = blog.get_post

    async def read_then_lose(id: int, check_author: bool = True) -> Row:
        post = await read_post(id, check_author)
        # Committed on its own (its own connection on PostgreSQL), as a racing request's is.
        await get_db().execute("DELETE FROM post WHERE id = ?", (id,))
        return post

    monkeypatch.setattr(blog, "get_post", read_then_lose)
    await auth.login()
    path, form = WRITES_AFTER_READ[write]
    response = await client.post(path, form=form)
    assert response.status_code == 404
    assert "Post id 1 doesn&#39;t exist." in await page_text(response)
    assert await row_count(app, "post") == 0  # an update brought nothing back
    assert await row_count(app, "post_event") == 0  # and announced nothing
    # Nothing claims success on the next page.
    assert "was " not in await page_text(await client.get("/"))
