"""Bring an older database (this app's, or Flask's Flaskr) up to the current schema at start-up."""

from __future__ import annotations

import re

from flaskr_async.db.interface import Connection
from flaskr_async.db.interface import logger
from flaskr_async.identity import NotAllowed
from flaskr_async.identity import username_key

SQLITE_USER_COLUMNS = "SELECT name FROM pragma_table_info('user')"
POSTGRES_USER_COLUMNS = (
    "SELECT column_name AS name FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = 'user'"
)
# Sets a key unless another row has it: the earlier account keeps the name's key.
SET_KEY = (
    'UPDATE "user" SET username_key = ? WHERE id = ?'
    ' AND NOT EXISTS (SELECT 1 FROM "user" WHERE username_key = ?)'
)
SHOWN_IDS = 20  # of the accounts left without a key, in the log line

# The objects a schema script creates (tables, indexes, rules) and the tables it drops.
CREATED = re.compile(
    r'CREATE (?:UNIQUE )?(?:TABLE|INDEX) IF NOT EXISTS "?(\w+)|CREATE OR REPLACE RULE (\w+)'
)
DROPPED = re.compile(r'DROP TABLE IF EXISTS "?(\w+)')
SQLITE_OBJECTS = "SELECT name FROM sqlite_master"
POSTGRES_OBJECTS = (
    "SELECT relname AS name FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
    " UNION ALL SELECT rulename FROM pg_rules WHERE schemaname = current_schema()"
)


async def schema_is_current(connection: Connection, script: str, objects_sql: str) -> bool:
    """Tell, taking no lock, whether start-up has nothing to create, drop or key.

    A starting worker that ran the schema script anyway would lock every table it names
    (PostgreSQL takes a SHARE lock even for an index that exists): writes on every host would
    wait for it, and a login's transaction, locking tables in another order, could deadlock.
    """
    names = {row["name"] for row in await connection.fetch_all(objects_sql)}
    created = {next(name for name in match if name) for match in CREATED.findall(script)}
    if not created <= names or names & set(DROPPED.findall(script)):
        return False
    row = await connection.fetch_one('SELECT 1 FROM "user" WHERE username_key IS NULL LIMIT 1')
    return row is None


async def migrate_sqlite(connection: Connection) -> None:
    """Upgrade an existing SQLite database, inside the schema transaction (it holds the lock)."""
    await upgrade_users(connection, await column_names(connection, SQLITE_USER_COLUMNS))


async def migrate_postgres(connection: Connection) -> None:
    """Upgrade an existing PostgreSQL database, inside the schema transaction."""
    columns = await column_names(connection, POSTGRES_USER_COLUMNS)
    if columns and await keys_missing(connection, columns):
        # Other hosts keep serving: no registration may take a key while keys are filled.
        await connection.execute('LOCK TABLE "user" IN SHARE ROW EXCLUSIVE MODE')
    await upgrade_users(connection, columns)


async def keys_missing(connection: Connection, columns: set[str]) -> bool:
    """Tell whether the key column, or some user's key, is missing."""
    if "username_key" not in columns:
        return True
    row = await connection.fetch_one('SELECT 1 FROM "user" WHERE username_key IS NULL LIMIT 1')
    return row is not None


async def column_names(connection: Connection, sql: str) -> set[str]:
    """Return the user table's column names (none: the table does not exist yet)."""
    return {row["name"] for row in await connection.fetch_all(sql)}


async def upgrade_users(connection: Connection, columns: set[str]) -> None:
    """Add the username key column and its index if missing, then key every unkeyed name."""
    if not columns:
        return  # a new database: the schema script creates the table as it is now
    if "username_key" not in columns:
        await connection.execute('ALTER TABLE "user" ADD COLUMN username_key TEXT')
        # Before the keys are filled, so that each "is this key taken?" is an index look-up.
        await connection.execute(
            'CREATE UNIQUE INDEX IF NOT EXISTS user_username_key_unique ON "user" (username_key)'
        )
    await fill_username_keys(connection)


async def fill_username_keys(connection: Connection) -> None:
    """Key the names that have none, oldest account first; log those that cannot have one.

    Runs at every start-up, so rows written by an older version still serving elsewhere get
    their key too. A name left without one still logs in, by its exact spelling.
    """
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
