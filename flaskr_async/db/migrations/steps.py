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

USER_COLUMNS = {
    "sqlite": "SELECT name FROM pragma_table_info('user')",
    "postgres": (
        "SELECT column_name AS name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'user'"
    ),
}
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


# Each Python migration: its number, its name (as a file's would be) and its step.
PYTHON_STEPS: dict[int, tuple[str, Step]] = {KEYS_VERSION: ("username_key", add_username_keys)}
