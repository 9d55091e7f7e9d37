"""The PostgreSQL tests' databases: leased to a test, given back for the next one if it holds
exactly what a new (or a newly migrated) one holds, else dropped.

Creating a database and dropping it cost the server more CPU than the test between them (about
0.2 s a test, some 400 tests a run). A test's database is therefore given back:

- *empty*: every schema dropped and public made again (for tests that open the database
  themselves: migrations, commands, the seam);
- *migrated*: only the rows deleted (for tests served by the app fixtures, whose start-up has
  already brought the schema to the newest version before the test begins). The next such
  test's app finds it at the newest version, as every start of a served app but the first does;
  the first start, on a new database, is still every empty lease's. Measured, server and client
  CPU a test: 67-85 ms empty (starting the app 40-56, giving the database back 18), 56-59
  migrated (27-28, and 21 to delete the rows and compare).

A database given back is compared with a reference (a new one; a new one the app's migrations
made): one that differs is emptied instead, or dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from graphlib import CycleError
from graphlib import TopologicalSorter

import asyncpg

from flaskr_async.db import opened
from tests.postgres_server import run_as_admin
from tests.postgres_server import with_database

# What a PostgreSQL database holds: counts of its catalogs' rows, its schemas with their owners
# and rights, and its settings. A used database emptied for the next test must hold what a new one
# does (differing only in object ids).
CATALOG_SIGNATURE = """
SELECT (SELECT count(*) FROM pg_class) AS relations,
       (SELECT count(*) FROM pg_proc) AS functions,
       (SELECT count(*) FROM pg_type) AS types,
       (SELECT count(*) FROM pg_extension) AS extensions,
       (SELECT count(*) FROM pg_event_trigger) AS event_triggers,
       (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,
       (SELECT count(*) FROM pg_publication) AS publications,
       (SELECT count(*) FROM pg_prepared_xacts) AS prepared,
       (SELECT count(*) FROM pg_policy) AS policies,
       (SELECT count(*) FROM pg_description) AS comments,
       (SELECT count(*) FROM pg_default_acl) AS default_privileges,
       (SELECT count(*) FROM pg_rewrite) AS rules,
       (SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
         WHERE d.datname = current_database()) AS settings,
       (SELECT string_agg(nspname || ' ' || nspowner::regrole || ' ' || coalesce(nspacl::text, ''),
         ', ' ORDER BY nspname) FROM pg_namespace) AS schemas
"""
# And, for a migrated one, the shape of what the app made: each relation's kind, owner, rights,
# options and row security; every column with its position, type, collation, identity, default
# and nullability; every index, constraint, rule, trigger and function; each sequence's
# parameters and state. (From the catalogs: information_schema's views cost several times more.)
PUBLIC = "(SELECT oid FROM pg_namespace WHERE nspname = 'public')"
SCHEMA_SIGNATURE = f"""
SELECT string_agg(item, E'\\n' ORDER BY item) FROM (
  SELECT format('relation %s %s %s %s %s %s %s %s', oid::regclass, relkind, relpersistence,
                relowner::regrole, relacl, reloptions, relrowsecurity, relforcerowsecurity) AS item
    FROM pg_class WHERE relnamespace = {PUBLIC}
  UNION ALL SELECT format('column %s.%s %s %s %s %s %s %s %s', a.attrelid::regclass, a.attname,
                          a.attnum, format_type(a.atttypid, a.atttypmod), a.attcollation,
                          a.attidentity, a.attgenerated, a.attnotnull,
                          pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = {PUBLIC} AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index
    WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = {PUBLIC})
  UNION ALL SELECT format('constraint %s %s %s', conrelid::regclass, conname,
                          pg_get_constraintdef(oid)) FROM pg_constraint
    WHERE connamespace = {PUBLIC}
  UNION ALL SELECT format('rule %s %s', pg_get_ruledef(oid), ev_enabled) FROM pg_rewrite
    WHERE ev_class IN (SELECT oid FROM pg_class WHERE relnamespace = {PUBLIC})
  UNION ALL SELECT format('trigger %s %s %s', tgrelid::regclass,
                          CASE WHEN tgisinternal THEN tgfoid::regproc::text ELSE tgname END,
                          tgenabled) FROM pg_trigger
  UNION ALL SELECT format('function %s %s', oid::regprocedure, md5(prosrc)) FROM pg_proc
    WHERE pronamespace = {PUBLIC}
  UNION ALL SELECT format('sequence %s %s %s %s %s %s %s', sequencename, start_value,
                          increment_by, min_value, max_value, cycle, last_value) FROM pg_sequences
) AS items
"""
# The tables and sequences of public (another schema fails the catalog signature), and which
# table each table's foreign keys point to.
PUBLIC_TABLES_AND_SEQUENCES = f"""
SELECT relkind::text AS kind, format('public.%I', relname) AS name FROM pg_class
  WHERE relnamespace = {PUBLIC} AND relkind IN ('r', 'S') ORDER BY name
"""
FOREIGN_KEYS = f"""
SELECT format('public.%I', child.relname) AS child, format('public.%I', parent.relname) AS parent
  FROM pg_constraint JOIN pg_class child ON child.oid = conrelid
  JOIN pg_class parent ON parent.oid = confrelid
  WHERE contype = 'f' AND connamespace = {PUBLIC}
"""
VERSIONS_TABLE = "public.schema_version"
# Every schema but the system's is dropped; public is made again as a new database has it.
NEW_PUBLIC = (
    "CREATE SCHEMA public AUTHORIZATION pg_database_owner;"
    " GRANT USAGE ON SCHEMA public TO PUBLIC;"
    " COMMENT ON SCHEMA public IS 'standard public schema'"
)
# What DROP DATABASE ... WITH (FORCE) does: end the connections a test left.
END_OTHER_CONNECTIONS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
)


async def signature(connection: asyncpg.Connection) -> tuple[object, ...]:
    """Return what a database holds (CATALOG_SIGNATURE)."""
    return tuple(await connection.fetchrow(CATALOG_SIGNATURE))


async def migrated_signature(
    connection: asyncpg.Connection, tables: list[str]
) -> tuple[object, ...]:
    """Return what a migrated database holds: catalogs, schema, rows counted, versions stamped."""
    # The versions' rows themselves, but not their applied_at: when the app first migrated.
    counts = [f"SELECT {quoted(table)}, count(*) FROM {table}" for table in tables]
    rows = await connection.fetch(" UNION ALL ".join(counts) + " ORDER BY 1") if tables else []
    versions = f"SELECT version, name FROM {VERSIONS_TABLE} ORDER BY 1"
    return (
        *await signature(connection),
        await connection.fetchval(SCHEMA_SIGNATURE),
        tuple(map(tuple, rows)),
        tuple(map(tuple, await connection.fetch(versions))) if VERSIONS_TABLE in tables else None,
    )


def quoted(text: str) -> str:
    """Return text as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


async def tables_and_sequences(connection: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """Return the names of the tables and sequences in public, qualified and quoted."""
    objects = await connection.fetch(PUBLIC_TABLES_AND_SEQUENCES)
    return (
        [row["name"] for row in objects if row["kind"] == "r"],
        [row["name"] for row in objects if row["kind"] == "S"],
    )


@dataclass
class DatabasePool:
    """The session's test databases, empty or migrated, and what a new one of each holds."""

    server: str
    spare: list[str] = field(default_factory=list)
    spare_migrated: list[str] = field(default_factory=list)
    new_signature: tuple[object, ...] | None = None
    newest_signature: tuple[object, ...] | None = None

    def url(self, name: str) -> str:
        """Return the URL of one of the server's databases."""
        return with_database(self.server, name)

    @asynccontextmanager
    async def connection(self, name: str) -> AsyncIterator[asyncpg.Connection]:
        """Connect to one of the server's databases for the block."""
        connection = await asyncpg.connect(self.url(name))
        try:
            yield connection
        finally:
            await connection.close()

    async def drop(self, name: str) -> None:
        """Drop one of the server's databases, ending the connections a test left."""
        await run_as_admin(self.server, f'DROP DATABASE "{name}" WITH (FORCE)')

    async def lease(self, *, migrated: bool = False) -> str:
        """Return the name of an empty database, or (``migrated``) one that may be migrated.

        A migrated one has the newest schema and no rows but its versions'; when there is none
        to reuse, an empty one is given, which the app migrates when it starts.
        """
        if migrated and self.spare_migrated:
            return self.spare_migrated.pop()
        if self.spare:
            return self.spare.pop()
        name = f"test_{uuid.uuid4().hex[:16]}"
        await run_as_admin(self.server, f'CREATE DATABASE "{name}"')
        if self.new_signature is None:
            async with self.connection(name) as connection:
                self.new_signature = await signature(connection)
        return name

    async def give_back(self, name: str, *, migrated: bool = False) -> None:
        """Keep a used database for the next test, emptied as it was leased, or drop it."""
        try:
            if migrated and await self.rows_deleted(name):
                self.spare_migrated.append(name)
                return
            if await self.emptied(name):
                self.spare.append(name)
                return
        except asyncpg.PostgresError:
            pass  # whatever the test left that these could not undo: the database goes
        await self.drop(name)

    async def close(self) -> None:
        """Drop the databases kept for reuse."""
        while self.spare or self.spare_migrated:
            name = (self.spare or self.spare_migrated).pop()
            await self.drop(name)

    async def emptied(self, name: str) -> bool:
        """Drop every schema the test made or filled; say whether the database is as new."""
        # One connection, to the database itself (each costs the server a process start).
        async with self.connection(name) as connection:
            await connection.execute(END_OTHER_CONNECTIONS)
            schemas = await connection.fetch(
                "SELECT nspname FROM pg_namespace"
                " WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
            )
            async with connection.transaction():
                for schema in schemas:
                    await connection.execute(f'DROP SCHEMA "{schema["nspname"]}" CASCADE')
                await connection.execute(NEW_PUBLIC)
            return await signature(connection) == self.new_signature

    async def rows_deleted(self, name: str) -> bool:
        """Delete all rows but the versions', restart sequences; say whether it is as migrated."""
        # The reference: a new database migrated by the app's own code, once a session.
        if self.newest_signature is None:
            self.newest_signature = await self.reference()
        async with self.connection(name) as connection:
            await connection.execute(END_OTHER_CONNECTIONS)
            tables, sequences = await tables_and_sequences(connection)
            # Children before parents, so that no foreign key stops a delete (and nothing that
            # only a superuser may set, as TEST_DATABASE_URL's role need not be one). In one
            # round trip.
            order = TopologicalSorter({table: set() for table in tables})
            for key in await connection.fetch(FOREIGN_KEYS):
                if key["parent"] != key["child"]:  # a table's rows are deleted all at once
                    order.add(key["parent"], key["child"])
            try:
                deletes = [f"DELETE FROM {t}" for t in order.static_order() if t != VERSIONS_TABLE]
            except CycleError:
                return False  # foreign keys in a circle: emptied instead
            script = deletes + [f"ALTER SEQUENCE {sequence} RESTART" for sequence in sequences]
            if script:
                async with connection.transaction():
                    await connection.execute(";".join(script))
            return await migrated_signature(connection, tables) == self.newest_signature

    async def reference(self) -> tuple[object, ...]:
        """Migrate a new database with the app's migrations; return its signature, keep it."""
        name = await self.lease()
        try:
            async with opened({"DATABASE": self.url(name)}, pool_size=1):
                pass
            async with self.connection(name) as connection:
                tables, _ = await tables_and_sequences(connection)
                reference = await migrated_signature(connection, tables)
        except BaseException:
            await self.drop(name)
            raise
        self.spare_migrated.append(name)
        return reference
