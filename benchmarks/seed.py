"""Seed benchmark databases fast: the app's own init-db makes the schema, one batch fills it.

SQLite: ``executemany`` into a copy of an empty file. PostgreSQL: ``executemany`` for the
users and ``COPY`` for the posts, into a database of the benchmark's private server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import asyncpg

BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password-1234"
AUTHORS = 10
TITLE = "Post number {} about asynchronous Python"
BODY = (
    "Flaskr is the tutorial blog of Flask. This post is one of many, written so that the"
    " index page has something realistic to render: a title, a body of a few hundred"
    " characters, an author and a date. Nothing in it needs escaping, except this & that"
    " <em>markup</em>, which Jinja escapes on every render, as it would for real users. {}"
)


def init_template(tree: Path, database: Path | str) -> None:
    """Create the empty schema (a SQLite file, or a PostgreSQL URL's tables) with ``init-db``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
    # init-db needs no key (only serving does); a real one keeps this seed like a deployment.
    env.update(FLASKR_DATABASE=str(database), PYTHONPATH=str(tree), FLASKR_SECRET_KEY="s" * 32)
    subprocess.run(
        [sys.executable, "-m", "quart", "--app", "flaskr_async", "init-db"],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def seed(template: Path, path: Path, posts: int, password_hash: str) -> Path:
    """Copy the empty database to ``path`` and add users and ``posts`` posts in one transaction."""
    shutil.copyfile(template, path)
    # copyfile makes it 0644 under umask 022: the app refuses a database others may read.
    os.chmod(path, 0o600)
    # closing() closes; the inner `with connection` commits (sqlite3's own context only commits).
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.executemany(
            'INSERT INTO "user" (username, username_key, password) VALUES (?, ?, ?)',
            users(password_hash),
        )
        connection.executemany(
            "INSERT INTO post (author_id, title, body) VALUES (?, ?, ?)", post_rows(posts)
        )
    return path


def users(password_hash: str) -> list[tuple[str, str, str]]:
    """Return the users' rows (name, key, hash): the benchmark user (id 1), then the authors."""
    # Lower-case ASCII names are their own key (flaskr_async.identity.username_key).
    names = [BENCH_USER] + [f"author{n}" for n in range(1, AUTHORS)]
    return [(name, name, password_hash if name == BENCH_USER else "not-a-hash") for name in names]


def post_rows(posts: int) -> list[tuple[int, str, str]]:
    """Return ``posts`` rows of (author_id, title, body), spread over the authors."""
    return [(n % AUTHORS + 1, TITLE.format(n), BODY.format(n)) for n in range(posts)]


def create_postgres_database(admin_url: str, name: str) -> None:
    """Create an empty database on the server that ``admin_url`` reaches."""

    async def create() -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())


def seed_postgres(tree: Path, url: str, posts: int, password_hash: str) -> str:
    """Create the app's schema at ``url`` and add users and ``posts`` posts; return the URL."""
    init_template(tree, url)

    async def fill() -> None:
        connection = await asyncpg.connect(url)
        try:
            async with connection.transaction():
                await connection.executemany(
                    'INSERT INTO "user" (username, username_key, password) VALUES ($1, $2, $3)',
                    users(password_hash),
                )
                await connection.copy_records_to_table(
                    "post",
                    records=post_rows(posts),
                    columns=["author_id", "title", "body"],
                )
            await connection.execute("ANALYZE")
        finally:
            await connection.close()

    asyncio.run(fill())
    return url


def bench_password_hash(tree: Path) -> str:
    """Hash the benchmark user's password with the app's current hasher (no rehash on login)."""
    code = (
        "import sys; from flaskr_async.accounts.passwords import hash_sync;"
        " sys.stdout.write(hash_sync(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, BENCH_PASSWORD],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout
