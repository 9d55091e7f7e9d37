"""Schema versions: a database records its version; numbered steps bring it to the newest.

The steps are the files beside this module, ``NNNN_name.sql`` (both backends) or
``NNNN_name.sqlite.sql`` and ``NNNN_name.postgres.sql`` (where the SQL differs), and the
Python steps of ``steps.py`` (``registry.py`` numbers them). At start-up ``upgrade`` reads the
version, taking no lock: current, nothing more; newer than the code, refused; older, each
pending step runs in its own transaction with its ``schema_version`` row, one process at a
time (SQLite's write lock, PostgreSQL's advisory lock). A new database is made from the
schema file and stamped with every version, as Rails loads schema.rb; a test checks that the
schema file and the sum of the steps make the same tables.

No library fits a raw-SQL app behind its own connection seam: quart-db brings its own
connection layer and pool, yoyo-migrations needs synchronous drivers (a second one for
PostgreSQL), alembic needs SQLAlchemy. This is the part of them the app needs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources

from flaskr_async.db.interface import Connection
from flaskr_async.db.interface import DatabaseUnavailable
from flaskr_async.db.migrations.registry import POSTGRES
from flaskr_async.db.migrations.registry import SQLITE
from flaskr_async.db.migrations.registry import Dialect
from flaskr_async.db.migrations.registry import Migration
from flaskr_async.db.migrations.registry import known_migrations
from flaskr_async.db.migrations.registry import schema_file_version
from flaskr_async.db.migrations.steps import KEYS_VERSION
from flaskr_async.db.migrations.steps import fill_username_keys
from flaskr_async.db.migrations.steps import keys_missing
from flaskr_async.db.schema import TABLES
from flaskr_async.db.schema import split_statements

__all__ = [
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "Migration",
    "MigrationFailed",
    "SchemaTooNew",
    "known_migrations",
    "read_version",
    "reset",
    "upgrade",
]

READ_VERSION = "SELECT max(version) AS version FROM schema_version"
STAMP = "INSERT INTO schema_version (version, name) VALUES (?, ?)"
# What each step of a database older than schema_version left, to tell how far it got.
SESSION_OBJECTS = {
    "user_session",
    "user_session_user",
    "user_session_created_at",
    "user_session_last_seen_at",
    "login_attempt",
    "login_attempt_username",
    "login_attempt_address",
    "login_attempt_device",
    "login_attempt_attempted_at",
}
LIVE_OBJECTS = {"sqlite": {"post_event"}, "postgres": {"post_event", "post_event_notify"}}

# A child of the package's logger: init-db --if-missing reports these lines (db/commands.py).
logger = logging.getLogger(__name__)


class MigrationFailed(DatabaseUnavailable):
    """A step failed: the database stays at the version before it."""


class SchemaTooNew(DatabaseUnavailable):
    """The database is at a version this code does not know, so it is left untouched."""


async def upgrade(
    connection: Connection, dialect: Dialect, migrations: Sequence[Migration] | None = None
) -> None:
    """Bring the database to the newest version, or refuse one newer than the code."""
    steps = known_migrations() if migrations is None else migrations
    version = await read_version(connection, dialect)
    applied: list[int] = []
    if version != len(steps):  # the usual start-up skips this: no lock, no writer waits
        refuse_newer(version, len(steps))
        applied = await migrate(connection, dialect, steps)
    # Unless migration 4 has just keyed every name: code from before it, still serving
    # elsewhere, may have written names without a key since the last start.
    if len(steps) >= KEYS_VERSION and KEYS_VERSION not in applied:
        await repair_username_keys(connection, dialect)


async def read_version(connection: Connection, dialect: Dialect) -> int | None:
    """Return the database's version, taking no lock (None: it has no schema_version)."""
    names = {row["name"] for row in await connection.fetch_all(dialect.objects)}
    if "schema_version" not in names:
        return None
    row = await connection.fetch_one(READ_VERSION)
    assert row is not None  # an aggregate always returns its row
    return None if row["version"] is None else int(row["version"])


def refuse_newer(version: int | None, newest: int) -> None:
    """Raise, saying both versions, if the database is newer than this code."""
    if version is not None and version > newest:
        message = (
            f"The database is at schema version {version}, newer than this code's {newest}:"
            " deploy the newer code, or restore a backup made for this version."
        )
        raise SchemaTooNew(message)


async def migrate(
    connection: Connection, dialect: Dialect, steps: Sequence[Migration]
) -> list[int]:
    """Apply each pending step in its own locked transaction; return the versions applied."""
    applied: list[int] = []
    while True:
        async with connection.transaction():
            await lock(connection, dialect)
            # Again under the lock: another process may have moved it on while we waited.
            version = await read_version(connection, dialect)
            refuse_newer(version, len(steps))
            if version == len(steps):
                return applied
            if version is None:
                await stamp_unversioned(connection, dialect, steps)
                continue
            step = steps[version]
            try:
                await step.apply(connection, dialect)
            except Exception as error:
                # One line: PostgreSQL's errors carry their DETAIL (the duplicated key, say)
                # on a line of its own.
                reason = " ".join(str(error).split())
                raise MigrationFailed(
                    f"Schema migration {step.version} ({step.name}) failed, the database stays"
                    f" at version {version}: {reason}"
                ) from error
            await connection.execute(STAMP, (step.version, step.name))
            logger.info("Schema migration %d (%s) applied", step.version, step.name)
            applied.append(step.version)


async def lock(connection: Connection, dialect: Dialect) -> None:
    """Wait for, then hold until commit, the right to change the schema."""
    if dialect.lock:
        await connection.execute(dialect.lock)


async def stamp_unversioned(
    connection: Connection, dialect: Dialect, steps: Sequence[Migration]
) -> None:
    """Give schema_version to a database without one: new, or made by an older version."""
    version = await recognise(connection, dialect)
    if version == 0:
        await create_newest(connection, dialect, steps)
        return
    await connection.execute(dialect.version_table)
    for step in steps[:version]:
        await connection.execute(STAMP, (step.version, step.name))
    logger.info("Database without schema versions recognised as version %d", version)


async def recognise(connection: Connection, dialect: Dialect) -> int:
    """Tell which version an unversioned database's tables show (0: none of this app's).

    Frozen with version 5, the last made before schema_version: each version counts only if
    every one before it does, so a shape older code left half-upgraded is completed by the
    steps after it, which create only what is missing.
    """
    names = {row["name"] for row in await connection.fetch_all(dialect.objects)}
    if not {"user", "post"} <= names:
        return 0
    if await connection.fetch_one(dialect.cascades) is None:
        return 1  # Flaskr's (older versions of this app kept its post key as it was)
    if not SESSION_OBJECTS <= names or "login_failure" in names:
        return 2
    if "user_username_key_unique" not in names:
        return 3
    if not LIVE_OBJECTS[dialect.name] <= names:
        return 4
    return 5


async def create_newest(
    connection: Connection, dialect: Dialect, steps: Sequence[Migration]
) -> None:
    """Make the newest schema from the schema file, stamped with the versions it holds."""
    await connection.execute(dialect.version_table)
    script = resources.files("flaskr_async").joinpath(dialect.schema).read_text()
    for statement in split_statements(script):
        await connection.execute(statement)
    stamped = steps[: schema_file_version()]
    for step in stamped:
        await connection.execute(STAMP, (step.version, step.name))
    logger.info("New database made at schema version %d", len(stamped))


async def repair_username_keys(connection: Connection, dialect: Dialect) -> None:
    """Key the names written without one since the last start, taking no lock if there are none."""
    if await keys_missing(connection):
        async with connection.transaction():
            await lock(connection, dialect)
            await fill_username_keys(connection, dialect.name)


async def reset(connection: Connection, dialect: Dialect) -> None:
    """Drop every table and make the newest schema afresh, in one transaction."""
    async with connection.transaction():
        await lock(connection, dialect)
        for table in TABLES:
            await connection.execute(dialect.drop.format(table=table))
        await create_newest(connection, dialect, known_migrations())
