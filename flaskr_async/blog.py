"""The blog: a paginated index, and creating, updating and deleting one's own posts."""

from __future__ import annotations

from quart import Blueprint
from quart import abort
from quart import current_app
from quart import flash
from quart import g
from quart import redirect
from quart import render_template
from quart import request
from quart import url_for
from quart.typing import ResponseReturnValue

from flaskr_async.auth import login_required
from flaskr_async.converters import MAX_ID
from flaskr_async.converters import PostIdConverter
from flaskr_async.db import Row
from flaskr_async.db import Statements
from flaskr_async.db import get_db
from flaskr_async.forms import DONE
from flaskr_async.forms import PostForm
from flaskr_async.forms import first_error
from flaskr_async.live import announce
from flaskr_async.live import last_event_id
from flaskr_async.live.post_events import SERIALIZE
from flaskr_async.live.post_events import record
from flaskr_async.quoting import quoted

bp = Blueprint("blog", __name__)
# Registered with the blueprint (before its routes are added), so create_app needs no line.
bp.record_once(lambda state: state.app.url_map.converters.update(post_id=PostIdConverter))

POST_ID = "<post_id:id>"

POST_COLUMNS = (
    "SELECT p.id, title, body, created, updated, author_id, username"
    ' FROM post p JOIN "user" u ON p.author_id = u.id'
)
# Keyset pagination: each page is one index range scan, however deep it is.
OLDER_POSTS = POST_COLUMNS + " WHERE p.id < ? ORDER BY p.id DESC LIMIT ?"
NEWER_POSTS = POST_COLUMNS + " WHERE p.id > ? ORDER BY p.id ASC LIMIT ?"


def cursor_arg(name: str) -> int | None:
    """Read a page cursor (a post id) from the query string; reject anything else."""
    value = request.args.get(name)
    if value is None:
        return None
    # The length check comes first: int() refuses strings of over 4,300 digits.
    digits_ok = value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID))
    if not digits_ok or not 0 < int(value) <= MAX_ID:
        abort(400, f"The page cursor {name!r} must be a post id.")
    return int(value)


async def post_exists(db: Statements, sql: str, post_id: int) -> bool:
    """Tell whether any post lies beyond ``post_id`` in the direction ``sql`` names."""
    return await db.fetch_one(sql, (post_id,)) is not None


async def page_of_posts(
    db: Statements, before: int | None, after: int | None, size: int
) -> tuple[list[Row], int | None, int | None]:
    """Return one page of posts, newest first, with the cursors of the pages around it."""
    if after is not None:
        rows = await db.fetch_all(NEWER_POSTS, (after, size + 1))
        posts = rows[:size][::-1]
        has_newer = len(rows) > size
        has_older = bool(posts) and await post_exists(
            db, "SELECT 1 FROM post WHERE id < ? LIMIT 1", posts[-1]["id"]
        )
    else:
        rows = await db.fetch_all(OLDER_POSTS, (before or MAX_ID, size + 1))
        posts = rows[:size]
        has_older = len(rows) > size
        has_newer = (
            before is not None
            and bool(posts)
            and await post_exists(db, "SELECT 1 FROM post WHERE id > ? LIMIT 1", posts[0]["id"])
        )
    newer = posts[0]["id"] if has_newer else None
    older = posts[-1]["id"] if has_older else None
    return posts, newer, older


@bp.route("/")
async def index() -> ResponseReturnValue:
    """Show one page of posts, newest first."""
    before, after = cursor_arg("before"), cursor_arg("after")
    posts, newer, older = await page_of_posts(
        get_db(), before, after, int(current_app.config["POSTS_PER_PAGE"])
    )
    # Only the first page is live: an older page gains no new posts.
    first_page = before is None and after is None
    live = url_for("live.events", since=last_event_id()) if first_page else None
    return await render_template(
        "blog/index.html", posts=posts, newer=newer, older=older, live=live
    )


def missing(id: int) -> str:
    """Return the message of a post that does not exist."""
    return f"Post id {id} doesn't exist."


def gone_since_read(changed: int, id: int) -> None:
    """Abort with 404 if a write found no post: it was deleted since this request read it.

    Under PostgreSQL's READ COMMITTED a delete committed meanwhile leaves nothing to update
    or delete; the caller's transaction then rolls back, recording no event.
    """
    if not changed:
        abort(404, missing(id))


async def get_post(id: int, check_author: bool = True) -> Row:
    """Return a post and its author.

    Aborts with 404 if the post does not exist, and with 403 if ``check_author`` is set
    and the current user is not its author.
    """
    post = await get_db().fetch_one(POST_COLUMNS + " WHERE p.id = ?", (id,))
    if post is None:
        abort(404, missing(id))
    if check_author and post["author_id"] != g.user["id"]:
        abort(403)
    return post


@bp.route("/create", methods=("GET", "POST"))
@login_required
async def create() -> ResponseReturnValue:
    """Create a post by the current user."""
    form = await PostForm.create_form()
    if await form.validate_on_submit():
        # The post and its event commit together: a rolled-back write is never announced.
        async with get_db().transaction(serialize=SERIALIZE) as tx:
            row = await tx.fetch_one(
                "INSERT INTO post (title, body, author_id) VALUES (?, ?, ?) RETURNING id",
                (form.title.data, form.body.data, g.user["id"]),
            )
            assert row is not None
            await record(tx, row["id"], "created")
        announce()
        await flash(f'Post "{quoted(form.title.data)}" was published.', DONE)
        return redirect(url_for("blog.index"))
    if form.errors:
        await flash(first_error(form))
    return await render_template("blog/create.html", form=form)


@bp.route(f"/{POST_ID}/update", methods=("GET", "POST"))
@login_required
async def update(id: int) -> ResponseReturnValue:
    """Update a post of the current user."""
    post = await get_post(id)
    form = await PostForm.create_form(data={"title": post["title"], "body": post["body"]})
    if await form.validate_on_submit():
        async with get_db().transaction(serialize=SERIALIZE) as tx:
            updated = await tx.execute(
                "UPDATE post SET title = ?, body = ?, updated = CURRENT_TIMESTAMP WHERE id = ?",
                (form.title.data, form.body.data, id),
            )
            gone_since_read(updated, id)
            await record(tx, id, "updated")
        announce()
        await flash(f'Post "{quoted(form.title.data)}" was saved.', DONE)
        return redirect(url_for("blog.index"))
    if form.errors:
        await flash(first_error(form))
    return await render_template("blog/update.html", post=post, form=form)


@bp.route(f"/{POST_ID}/delete", methods=("POST",))
@login_required
async def delete(id: int) -> ResponseReturnValue:
    """Delete a post of the current user."""
    post = await get_post(id)
    async with get_db().transaction(serialize=SERIALIZE) as tx:
        deleted = await tx.execute("DELETE FROM post WHERE id = ?", (id,))
        gone_since_read(deleted, id)
        await record(tx, id, "deleted")
    announce()
    await flash(f'Post "{quoted(post["title"])}" was deleted.', DONE)
    return redirect(url_for("blog.index"))
