"""The PostgreSQL tests' databases are reused only when they hold what a new one holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import pytest

from flaskr_async.db import opened
from tests.postgres_databases import DatabasePool
from tests.postgres_server import run_as_admin

# What a test might leave in a migrated database that deleting its rows does not undo.
LEFT_BEHIND = {
    "a column": "ALTER TABLE post ADD COLUMN extra TEXT",
    "a column's default": "ALTER TABLE post ALTER COLUMN title SET DEFAULT 'x'",
    "an index": "CREATE INDEX post_title ON post (title)",
    "a constraint": "ALTER TABLE post ADD CONSTRAINT short CHECK (length(title) < 1000)",
    "disabled foreign keys": "ALTER TABLE post DISABLE TRIGGER ALL",
    "a function": "CREATE FUNCTION one() RETURNS int AS 'SELECT 1' LANGUAGE sql",
    "a trigger": "CREATE TRIGGER same BEFORE UPDATE ON post FOR EACH ROW"
    " EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "a table": "CREATE TABLE scratch (id int)",
    "a schema": "CREATE SCHEMA scratch",
    "a version": "INSERT INTO schema_version (version, name) VALUES (999, 'made up')",
    "a sequence": "CREATE SEQUENCE scratch_sequence",
    "no versions": "DROP TABLE schema_version",
    "no tables": "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables"
    " WHERE schemaname = 'public' LOOP EXECUTE format('DROP TABLE %I CASCADE', t); END LOOP;"
    " END $$",
    "no public schema": "DROP SCHEMA public CASCADE",
    "a quote in a name": 'CREATE TABLE "it\'s" (id int)',
    "a rule dropped": "DROP RULE post_event_notify ON post_event",
    "a rule disabled": "ALTER TABLE post_event DISABLE RULE post_event_notify",
    "a sequence's step": "ALTER TABLE post ALTER COLUMN id SET INCREMENT BY 100",
    "an identity always": "ALTER TABLE post ALTER COLUMN id SET GENERATED ALWAYS",
    "row security": "ALTER TABLE post ENABLE ROW LEVEL SECURITY",
    "a policy": "CREATE POLICY hidden ON post USING (false)",
    "a comment": "COMMENT ON TABLE post IS 'changed'",
    "a grant": "GRANT SELECT ON post TO PUBLIC",
    "unlogged": "ALTER TABLE login_attempt SET UNLOGGED",
    "a column moved": "ALTER TABLE post DROP COLUMN body, ADD COLUMN body TEXT NOT NULL",
}


@pytest.fixture(scope="module")
def pool(postgres_server: str) -> Iterator[DatabasePool]:
    """Yield a pool of this module's own; its databases are dropped after."""
    pool = DatabasePool(postgres_server)
    yield pool
    asyncio.run(pool.close())


async def run(pool: DatabasePool, name: str, statement: str) -> None:
    """Run one statement in a leased database."""
    async with pool.connection(name) as connection:
        await connection.execute(statement)


async def test_a_migrated_database_with_rows_is_reused_without_them(pool: DatabasePool) -> None:
    name = await pool.lease(migrated=True)
    async with opened({"DATABASE": pool.url(name)}, pool_size=1):
        pass
    await run(
        pool, name, "INSERT INTO \"user\" (username, username_key, password) VALUES ('a', 'a', 'x')"
    )
    await pool.give_back(name, migrated=True)
    assert name in pool.spare_migrated
    assert await pool.lease(migrated=True) == name
    async with pool.connection(name) as connection:
        assert await connection.fetchval('SELECT count(*) FROM "user"') == 0


@pytest.mark.parametrize("change", LEFT_BEHIND.values(), ids=LEFT_BEHIND)
async def test_a_migrated_database_changed_otherwise_is_not_reused_as_migrated(
    pool: DatabasePool, change: str
) -> None:
    name = await pool.lease(migrated=True)
    async with opened({"DATABASE": pool.url(name)}, pool_size=1):
        pass
    await run(pool, name, change)
    await pool.give_back(name, migrated=True)
    assert name not in pool.spare_migrated
    assert name in pool.spare  # emptied instead: as a new database is


async def test_a_role_that_is_no_superuser_reuses_migrated_databases(postgres_server: str) -> None:
    # TEST_DATABASE_URL's role need only be allowed to create databases.
    role, password = f"tester_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await run_as_admin(postgres_server, f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
    address = urlsplit(postgres_server)
    netloc = f"{role}:{password}@{address.hostname}:{address.port}"
    pool = DatabasePool(urlunsplit(address._replace(netloc=netloc)))
    try:
        name = await pool.lease(migrated=True)
        async with opened({"DATABASE": pool.url(name)}, pool_size=1) as database:
            async with database.lease() as connection:
                await connection.execute(
                    'INSERT INTO "user" (username, username_key, password) VALUES (?, ?, ?)',
                    ("a", "a", "x"),
                )
        await pool.give_back(name, migrated=True)
        assert name in pool.spare_migrated
    finally:
        await pool.close()
        await run_as_admin(postgres_server, f"DROP ROLE {role}")
