"""The command-line tools, init-db and backup: an expected failure is one line, not a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import click
from quart import Quart
from quart.cli import ScriptInfo
from quart.cli import pass_script_info

from flaskr_async import private_files
from flaskr_async.db import Database
from flaskr_async.db import DatabaseUnavailable
from flaskr_async.db import migrations
from flaskr_async.db import opened
from flaskr_async.db.migrations import known_migrations

T = TypeVar("T")

COUNT_ROWS = 'SELECT (SELECT COUNT(*) FROM "user") AS users, (SELECT COUNT(*) FROM post) AS posts'


@contextmanager
def errors_reported_once() -> Iterator[None]:
    """Keep the app's logger quiet: the command reports its own error, as one line."""
    logger = logging.getLogger("flaskr_async")
    level = logger.level
    # The backends log why a database is unusable (the server's log needs it); here the same
    # text comes back as the command's `Error: ...` line, and would otherwise print twice.
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class Collected(logging.Handler):
    """Keep the messages of the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's message."""
        self.messages.append(record.getMessage())


@contextmanager
def schema_changes() -> Iterator[list[str]]:
    """Collect what opening the database did to its schema, as the migrations log it."""
    logger = migrations.logger
    level, propagate = logger.level, logger.propagate
    collected = Collected()
    # Its own level: errors_reported_once quiets the package's logger; said once, here.
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(collected)
    try:
        yield collected.messages
    finally:
        logger.removeHandler(collected)
        logger.setLevel(level)
        logger.propagate = propagate


def run_with_database(
    info: ScriptInfo, action: Callable[[Database], Awaitable[T]], migrate: bool = True
) -> T:
    """Load the app and run one async action on its database, from a sync CLI command."""
    app = info.load_app()

    async def main() -> T:
        async with app.app_context(), opened(app.config, 1, migrate) as database:
            return await action(database)

    try:
        with errors_reported_once():
            return asyncio.run(main())
    except DatabaseUnavailable as error:
        raise click.ClickException(str(error)) from error


async def keep_schema(_database: Database) -> None:
    """Do nothing more: opening the database already applied the pending migrations."""


async def count_rows(database: Database) -> tuple[int, int]:
    """Return how many users and posts the database holds."""
    row = await database.fetch_one(COUNT_ROWS)
    assert row is not None  # an aggregate always returns its row
    return int(row["users"]), int(row["posts"])


async def reset_schema(database: Database) -> None:
    """Drop every table and create the schema afresh."""
    await database.reset_schema()


def plural(count: int, noun: str) -> str:
    """Say ``1 user`` or ``2 users``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def stdin_is_a_terminal() -> bool:
    """Say whether someone can answer a question typed on standard input."""
    return sys.stdin.isatty()


@click.command("init-db")
@click.option(
    "--if-missing",
    is_flag=True,
    help="Only apply the pending schema migrations, dropping nothing: safe on every deploy,"
    " from every host at once.",
)
@click.option("--yes", is_flag=True, help="Drop the users and posts there are without asking.")
@pass_script_info
def init_db_command(info: ScriptInfo, if_missing: bool, yes: bool) -> None:
    """Drop all data and create the tables afresh (asks first if there is data)."""
    if if_missing:
        # A new database made, or the migrations applied: said, not only "is at the newest".
        with schema_changes() as changes:
            run_with_database(info, keep_schema)
        for change in changes:
            click.echo(f"{change}.")
        click.echo(f"The database is at schema version {len(known_migrations())}, the newest.")
        return
    users, posts = run_with_database(info, count_rows)
    if (users or posts) and not yes:
        doomed = f"{plural(users, 'user')} and {plural(posts, 'post')}"
        if not stdin_is_a_terminal():
            raise click.ClickException(
                f"The database holds {doomed}, which init-db would drop. Run it on a terminal"
                " to be asked, pass --yes to drop them, or use --if-missing to keep them."
            )
        click.confirm(f"Drop {doomed} and create empty tables?", abort=True)
    run_with_database(info, reset_schema)
    click.echo("Initialized the database.")


def check_backup_target(path: str) -> None:
    """Refuse a target that exists or cannot be written, before the database is opened."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise click.ClickException(
            f"{path} already exists: back up to a new file,"
            " e.g. with $(date +%F-%H%M%S) in its name."
        )
    if not target.parent.is_dir():
        raise click.ClickException(f"There is no folder {target.parent}: create it first.")
    try:
        # Creating the file is the one test that holds for root, read-only mounts and ACLs alike
        # (exclusively and owner-only, as the backup itself will be: private_files.py).
        os.close(private_files.create(path))
        target.unlink()
    except OSError as error:
        raise click.ClickException(f"Cannot write {path}: {error.strerror}.") from error


@click.command("backup")
@click.argument("path")
@pass_script_info
def backup_command(info: ScriptInfo, path: str) -> None:
    """Write a consistent copy of the database to PATH, safe while the app serves."""
    check_backup_target(path)
    # The database as it is: a copy made before an upgrade must be of the old schema, and a
    # database newer than this code (a rollback) can still be copied.
    source = run_with_database(info, partial(back_up, target=path), migrate=False)
    # Named: run inside a clone, the app is the clone's and so is its database.
    click.echo(f"Backed up the database {source} to {path}.")


async def back_up(database: Database, target: str) -> str:
    """Copy the database to target; return the database's name (a URL without its password)."""
    await database.backup(target)
    return str(database)


def init_app(app: Quart) -> None:
    """Add the commands to `quart --app flaskr_async`."""
    app.cli.add_command(init_db_command)
    app.cli.add_command(backup_command)
