"""The migrations written in Python, where data must be transformed: usernames' canonical keys."""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable

from flaskr_async.db.interface import Connection
from flaskr_async.db.interface import logger
from flaskr_async.identity import NotAllowed
from flaskr_async.identity import username_key

# A step is given the connection, inside its transaction, and the backend's SQL dialect name.
Step = Callable[[Connection, str], Awaitable[None]]

KEYS_VERSION = 4  # the migration that gives usernames their canonical key
CASE_FOLDED_KEYS_VERSION = 7  # the one that makes them again, case-folded on a frozen repertoire

ACCOUNT_COLUMNS_VERSION = 6  # the one that adds what /auth/password and /auth/sessions keep
POST_UPDATED_VERSION = 8  # the one that records when a post was last edited

COLUMNS = {
    "sqlite": "SELECT name FROM pragma_table_info('{table}')",
    "postgres": (
        "SELECT column_name AS name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = '{table}'"
    ),
}
USER_COLUMNS = {dialect: sql.format(table="user") for dialect, sql in COLUMNS.items()}
# Per table, the columns migration 6 adds, with their type in each dialect (the schema files
# say what each holds).
ACCOUNT_COLUMNS = {
    "user_session": [
        ("user_agent", "TEXT NOT NULL DEFAULT ''", "TEXT NOT NULL DEFAULT ''"),
        ("login_id", "TEXT NOT NULL DEFAULT ''", "TEXT NOT NULL DEFAULT ''"),
    ],
    "user": [
        ("password_changed_at", "REAL NOT NULL DEFAULT 0", "DOUBLE PRECISION NOT NULL DEFAULT 0")
    ],
}
# The column migration 8 adds: when a post was last edited (NULL: never).
POST_UPDATED_COLUMNS = {"post": [("updated", "TIMESTAMP", "TIMESTAMPTZ")]}
# Posts whose edit the live index's feed still holds were edited before the column existed.
UPDATED_FROM_EVENTS = (
    "UPDATE post SET updated = (SELECT max(at) FROM post_event"
    " WHERE post_event.post_id = post.id AND kind = 'updated') WHERE updated IS NULL"
)
# Other hosts keep serving: no registration may take a key while keys are filled. (SQLite's
# BEGIN IMMEDIATE already keeps every other writer out.)
LOCK_USERS = {"sqlite": "", "postgres": 'LOCK TABLE "user" IN SHARE ROW EXCLUSIVE MODE'}
# Sets a key unless another row has it: the earlier account keeps the name's key.
SET_KEY = (
    'UPDATE "user" SET username_key = ? WHERE id = ?'
    ' AND NOT EXISTS (SELECT 1 FROM "user" WHERE username_key = ?)'
)
SHOWN_IDS = 20  # of the accounts left without a key, in the log line


async def add_username_keys(connection: Connection, dialect: str) -> None:
    """Add the username key column and its unique index, then key every name."""
    columns = {row["name"] for row in await connection.fetch_all(USER_COLUMNS[dialect])}
    if "username_key" not in columns:  # an older version of this app may have added it
        await connection.execute('ALTER TABLE "user" ADD COLUMN username_key TEXT')
    # Before the keys are filled, so that each "is this key taken?" is an index look-up.
    await connection.execute(
        'CREATE UNIQUE INDEX IF NOT EXISTS user_username_key_unique ON "user" (username_key)'
    )
    await fill_username_keys(connection, dialect)


async def keys_missing(connection: Connection) -> bool:
    """Tell, taking no lock, whether some user has no key."""
    row = await connection.fetch_one('SELECT 1 FROM "user" WHERE username_key IS NULL LIMIT 1')
    return row is not None


async def fill_username_keys(connection: Connection, dialect: str) -> None:
    """Key the names that have none, oldest account first; log those that cannot have one.

    Migration 4 runs it once; start-up runs it again whenever a key is missing (outside the
    version numbers: it changes rows, not the schema), so rows written by an older version
    still serving elsewhere get their key too. A name left without one still logs in, by its
    exact spelling.
    """
    if LOCK_USERS[dialect]:
        await connection.execute(LOCK_USERS[dialect])
    rows = await connection.fetch_all(
        'SELECT id, username FROM "user" WHERE username_key IS NULL ORDER BY id'
    )
    unkeyed: list[int] = []
    for row in rows:
        try:
            key = username_key(row["username"])
        except NotAllowed:
            unkeyed.append(row["id"])
            continue
        if not await connection.execute(SET_KEY, (key, row["id"], key)):
            unkeyed.append(row["id"])
    if unkeyed:
        logger.warning(
            "%d usernames have no canonical key (refused by PRECIS, or the same name as an"
            " earlier account's in another spelling); they log in by their exact spelling only."
            " User ids (the first %d): %s",
            len(unkeyed),
            SHOWN_IDS,
            unkeyed[:SHOWN_IDS],
        )


async def add_account_columns(connection: Connection, dialect: str) -> None:
    """Add the session's User-Agent and the password's last change, where they are missing."""
    await add_columns(connection, dialect, ACCOUNT_COLUMNS)


async def add_post_updated(connection: Connection, dialect: str) -> None:
    """Add when each post was last edited, filled in from the live index's recent events."""
    await add_columns(connection, dialect, POST_UPDATED_COLUMNS)
    await connection.execute(UPDATED_FROM_EVENTS)


async def add_columns(
    connection: Connection, dialect: str, tables: dict[str, list[tuple[str, str, str]]]
) -> None:
    """Add each table's columns (name, SQLite type, PostgreSQL type) that it lacks.

    Each is checked first, as in migration 4: a database whose version table was emptied is
    recognised as version 5 and brought forward again, over columns it may already have.
    """
    for table, columns in tables.items():
        query = COLUMNS[dialect].format(table=table)
        present = {row["name"] for row in await connection.fetch_all(query)}
        for name, sqlite_type, postgres_type in columns:
            if name not in present:
                column_type = sqlite_type if dialect == "sqlite" else postgres_type
                await connection.execute(f'ALTER TABLE "{table}" ADD COLUMN {name} {column_type}')


async def refold_username_keys(connection: Connection, dialect: str) -> None:
    """Make every name's key again: case-folded, from one Unicode database on every Python.

    Keys made before were lower-cased by the running Python's Unicode version, so two hosts
    could key one name apart, and "ΟΔΟΣ" and "οδοσ" were two accounts. Now twins share a key;
    the earlier account keeps it and a later twin logs in by its exact spelling only (logged).
    """
    if LOCK_USERS[dialect]:
        await connection.execute(LOCK_USERS[dialect])
    await connection.execute('UPDATE "user" SET username_key = NULL')
    await fill_username_keys(connection, dialect)


# Each Python migration: its number, its name (as a file's would be) and its step.
PYTHON_STEPS: dict[int, tuple[str, Step]] = {
    KEYS_VERSION: ("username_key", add_username_keys),
    ACCOUNT_COLUMNS_VERSION: ("account_self_service", add_account_columns),
    CASE_FOLDED_KEYS_VERSION: ("case_folded_username_keys", refold_username_keys),
    POST_UPDATED_VERSION: ("post_updated", add_post_updated),
}
