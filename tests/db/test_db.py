"""The database seam, on every backend: lifecycle, leases, transactions."""

from __future__ import annotations

import asyncio
from datetime import UTC
from datetime import datetime
from typing import Any

import pytest
from quart import Quart

from flaskr_async import create_app
from flaskr_async.db import NOT_SERVING
from flaskr_async.db import IntegrityError
from flaskr_async.db import Pool
from flaskr_async.db import create_database
from flaskr_async.db import current_database
from flaskr_async.db import get_db
from tests.helpers import serving


def database_of(app: Quart) -> Pool:
    """Return the open database of a serving app."""
    database: Pool = app.extensions["flaskr_async.db"]
    return database


async def titles(database: Pool) -> list[str]:
    """Return the post titles in id order."""
    async with database.lease() as db:
        return [row["title"] for row in await db.fetch_all("SELECT title FROM post ORDER BY id")]


async def test_the_database_outside_serving_says_where_it_opens(
    app_config: dict[str, Any],
) -> None:
    """Flaskr's `app.app_context()` then `get_db()` names test_app(), not a bare KeyError."""
    app = create_app(app_config)
    async with app.app_context():
        with pytest.raises(RuntimeError) as raised:
            get_db()
    assert str(raised.value) == NOT_SERVING
    assert "async with app.test_app():" in str(raised.value)
    async with app.test_app():
        pass
    async with app.app_context():  # served, then closed: the same message
        with pytest.raises(RuntimeError, match="opens while the app serves"):
            current_database()


async def test_each_statement_leases_and_gives_back(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "DATABASE_POOL_SIZE": 1})
    async with app.test_app(), app.test_request_context("/"):
        db = get_db()
        # With one connection, a statement or transaction that kept its lease would hang here.
        for _ in range(3):
            assert await db.fetch_one("SELECT count(*) AS n FROM post") is not None
            assert await db.fetch_all("SELECT id FROM post") == []
            assert await db.execute("DELETE FROM post") == 0
            async with db.transaction() as tx:
                assert await tx.execute("DELETE FROM post") == 0
            async with db.transaction(serialize="a queue") as tx:
                assert await tx.fetch_one("SELECT 1 AS one") is not None


async def test_created_is_an_aware_datetime(app: Quart) -> None:
    async with database_of(app).lease() as db:
        post = await db.fetch_one("SELECT created FROM post")
    assert post is not None
    assert post["created"] == datetime(2018, 1, 1, tzinfo=UTC)


async def test_new_posts_get_the_current_time(app: Quart) -> None:
    async with database_of(app).lease() as db:
        async with db.transaction():
            await db.execute("INSERT INTO post (title, body, author_id) VALUES ('now', '', 1)")
        post = await db.fetch_one("SELECT created FROM post WHERE title = 'now'")
    assert post is not None
    assert abs((datetime.now(UTC) - post["created"]).total_seconds()) < 60


async def test_serving_creates_missing_tables(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)
    async with app.test_app():
        async with database_of(app).lease() as db:
            for table in ("user", "post", "login_attempt", "user_session"):
                assert await db.fetch_all(f'SELECT * FROM "{table}"') == []


async def test_serving_keeps_existing_rows(app: Quart, app_config: dict[str, Any]) -> None:
    again = create_app(app_config)
    async with again.test_app():
        assert await titles(database_of(again)) == ["test title"]


async def test_failed_transaction_rolls_back(app: Quart) -> None:
    async with database_of(app).lease() as db:
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.execute("DELETE FROM post")
                raise RuntimeError("the request failed after writing")
    assert await titles(database_of(app)) == ["test title"]


async def test_execute_counts_changed_rows(app: Quart) -> None:
    async with database_of(app).lease() as db, db.transaction():
        assert await db.execute("UPDATE post SET title = 'x' WHERE id = 1") == 1
        assert await db.execute("DELETE FROM post WHERE id = 2") == 0


async def test_integrity_error_is_backend_neutral(app: Quart) -> None:
    async with database_of(app).lease() as db:
        with pytest.raises(IntegrityError):
            async with db.transaction():
                await db.execute(
                    'INSERT INTO "user" (username, password) VALUES (?, ?)', ("test", "x")
                )


async def test_cancelled_write_leaves_no_row_and_no_transaction(app: Quart) -> None:
    database = database_of(app)
    inserted = asyncio.Event()

    async def write_then_hang() -> None:
        async with database.lease() as db, db.transaction():
            await db.execute("INSERT INTO post (title, body, author_id) VALUES ('orphan', '', 1)")
            inserted.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(write_then_hang())
    await inserted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Every pooled connection takes a write: none is stuck in the cancelled transaction.
    written = [str(n) for n in range(database.pool_size)]
    for title in written:
        async with database.lease() as db, db.transaction():
            await db.execute(
                "INSERT INTO post (title, body, author_id) VALUES (?, '', 1)", (title,)
            )
    assert await titles(database) == ["test title", *written]


async def test_isolation_between_concurrent_requests(app_config: dict[str, Any]) -> None:
    # Two connections, so that two units of work run at once (SQLite's default pool is one).
    async with serving({**app_config, "DATABASE_POOL_SIZE": 2}) as app:
        await isolation_between_concurrent_units(database_of(app))


async def isolation_between_concurrent_units(database: Pool) -> None:
    """A unit that fails after writing leaves nothing, beside one that commits."""
    first_wrote, second_started = asyncio.Event(), asyncio.Event()

    async def fails_after_writing() -> None:
        async with database.lease() as db, db.transaction():
            await db.execute("INSERT INTO post (title, body, author_id) VALUES ('lost', '', 1)")
            first_wrote.set()
            await second_started.wait()
            await asyncio.sleep(0.05)  # the second is now inside its own transaction
            raise RuntimeError("the first request fails after writing")

    async def commits() -> None:
        await first_wrote.wait()
        async with database.lease() as db:
            second_started.set()
            # SQLite: waits for the first's write lock; PostgreSQL: commits beside it.
            async with db.transaction():
                await db.execute("INSERT INTO post (title, body, author_id) VALUES ('kept', '', 1)")

    results = await asyncio.gather(fails_after_writing(), commits(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1] is None
    assert await titles(database) == ["test title", "kept"]


async def test_leases_are_exclusive(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "DATABASE_POOL_SIZE": 1})
    async with app.test_app():
        database = database_of(app)
        release = asyncio.Event()
        order: list[str] = []

        async def hold(name: str) -> None:
            async with database.lease():
                order.append(f"{name} leased")
                await release.wait()
                order.append(f"{name} released")

        first = asyncio.create_task(hold("first"))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(hold("second"))
        await asyncio.sleep(0.05)
        assert order == ["first leased"]
        release.set()
        await asyncio.gather(first, second)
    assert order == ["first leased", "first released", "second leased", "second released"]


async def test_current_database_is_the_serving_one(app: Quart) -> None:
    async with app.app_context():
        assert current_database() is database_of(app)


async def test_cancelled_startup_closes_what_it_opened(app_config: dict[str, Any]) -> None:
    database = create_database(create_app(app_config).config)
    opening = asyncio.create_task(database.open())
    await asyncio.sleep(0)  # the task runs up to its first await: making a connection
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    # Nothing is left open: the autouse guard checks for aiosqlite threads; a leaked
    # asyncpg connection would warn (an error here) when collected.
    await database.close()


async def test_a_starting_worker_waits_for_no_transaction(app: Quart) -> None:
    # Another worker's transaction holds a write lock on every table (PostgreSQL: a deadlock
    # with a login's transaction was possible when start-up ran the schema script regardless).
    async with database_of(app).transaction() as tx:
        for table in ("post_event", "login_attempt", "user_session", "post", "user"):
            await tx.execute(f'DELETE FROM "{table}"')
        starting = create_database(app.config)
        try:
            async with asyncio.timeout(10):
                await starting.open()
        finally:
            await starting.close()
