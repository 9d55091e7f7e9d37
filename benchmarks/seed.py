"""Seed benchmark databases fast: the app's own init-db makes the file, executemany fills it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

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


def init_template(tree: Path, path: Path) -> None:
    """Create an empty database file with the app's own ``init-db`` command."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
    env.update(FLASKR_DATABASE=str(path), PYTHONPATH=str(tree))
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
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(
            'INSERT INTO "user" (username, password) VALUES (?, ?)', (BENCH_USER, password_hash)
        )
        connection.executemany(
            'INSERT INTO "user" (username, password) VALUES (?, ?)',
            ((f"author{n}", "not-a-hash") for n in range(1, AUTHORS)),
        )
        connection.executemany(
            "INSERT INTO post (author_id, title, body) VALUES (?, ?, ?)",
            ((n % AUTHORS + 1, TITLE.format(n), BODY.format(n)) for n in range(posts)),
        )
    connection.close()
    return path


def bench_password_hash(tree: Path) -> str:
    """Hash the benchmark user's password with the app's current hasher (no rehash on login)."""
    code = (
        "import sys; from flaskr_async.passwords import hash_sync;"
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
