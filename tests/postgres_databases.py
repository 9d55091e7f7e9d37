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
  CPU a test: starting the app 50-75 ms on an empty database, 25-33 on a migrated one; giving
  the database back about 17 ms either way.

A database given back is compared with a reference (a new one; a new one the app's migrations
made): one that differs is emptied instead, or dropped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field

import asyncpg

from flaskr_async.db import opened
from tests.postgres_server import run_as_admin
from tests.postgres_server import with_database

# What a PostgreSQL database holds: counts of its catalogs' rows, its schemas with their owners
# and rights, and its settings. A used database emptied for the next test must hold what a new one
# does (differing only in object ids), or it is dropped.
CATALOG_SIGNATURE = """
SELECT (SELECT count(*) FROM pg_class) AS relations,
       (SELECT count(*) FROM pg_proc) AS functions,
       (SELECT count(*) FROM pg_type) AS types,
       (SELECT count(*) FROM pg_extension) AS extensions,
       (SELECT count(*) FROM pg_event_trigger) AS event_triggers,
       (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,
       (SELECT count(*) FROM pg_publication) AS publications,
       (SELECT count(*) FROM pg_prepared_xacts) AS prepared,
       (SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
         WHERE d.datname = current_database()) AS settings,
       (SELECT string_agg(nspname || ' ' || nspowner::regrole || ' ' || coalesce(nspacl::text, ''),
         ', ' ORDER BY nspname) FROM pg_namespace) AS schemas
"""
# And, for a migrated one, the shape of what the app made: every column with its type, default
# and nullability, every index, constraint, trigger and function, and each sequence's state.
# (From the catalogs: information_schema's views cost the server several times more.)
SCHEMA_SIGNATURE = """
SELECT string_agg(item, E'\\n' ORDER BY item) FROM (
  SELECT format('column %s.%s %s %s %s', a.attrelid::regclass, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
    AS item
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'public')
      AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index
    WHERE indrelid IN (
      SELECT oid FROM pg_class
        WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'public'))
  UNION ALL SELECT format('constraint %s %s %s', conrelid::regclass, conname,
                          pg_get_constraintdef(oid)) FROM pg_constraint
    WHERE connamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'public')
  UNION ALL SELECT format('trigger %s %s %s', tgrelid::regclass,
                          CASE WHEN tgisinternal THEN tgfoid::regproc::text ELSE tgname END,
                          tgenabled) FROM pg_trigger
  UNION ALL SELECT format('function %s %s', oid::regprocedure, md5(prosrc)) FROM pg_proc
    WHERE pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'public')
  UNION ALL SELECT format('sequence %s %s', sequencename, last_value) FROM pg_sequences
) AS items
"""
# The tables and sequences of a migrated database (another schema fails the catalog signature).
OBJECTS = """
SELECT relkind::text AS kind, format('public.%I', relname) AS name FROM pg_class
  WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'public')
    AND relkind IN ('r', 'S') ORDER BY name
"""
VERSIONS = "public.schema_version"
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
    """Return what a migrated database holds: its catalogs, its schema, and its rows' counts
    (with the versions' rows themselves: their applied_at is when the app first migrated)."""
    counts = [f"SELECT {quoted(table)}, count(*) FROM {table}" for table in tables]
    rows = await connection.fetch(" UNION ALL ".join(counts) + " ORDER BY 1") if tables else []
    versions = f"SELECT version, name FROM {VERSIONS} ORDER BY 1"
    return (
        *await signature(connection),
        await connection.fetchval(SCHEMA_SIGNATURE),
        tuple(map(tuple, rows)),
        tuple(map(tuple, await connection.fetch(versions))) if VERSIONS in tables else None,
    )


def quoted(text: str) -> str:
    """Return text as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


async def tables_and_sequences(connection: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """Return the names of the tables and sequences in public, qualified and quoted."""
    objects = await connection.fetch(OBJECTS)
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

    async def lease(self, migrated: bool = False) -> str:
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
            connection = await asyncpg.connect(self.url(name))
            try:
                self.new_signature = await signature(connection)
            finally:
                await connection.close()
        return name

    async def give_back(self, name: str, migrated: bool = False) -> None:
        """Keep a used database for the next test, emptied as it was leased, or drop it."""
        if migrated and await self.rows_deleted(name):
            self.spare_migrated.append(name)
        elif await self.emptied(name):
            self.spare.append(name)
        else:
            await run_as_admin(self.server, f'DROP DATABASE "{name}" WITH (FORCE)')

    async def emptied(self, name: str) -> bool:
        """Drop every schema the test made or filled; say whether the database is as new."""
        # One connection, to the database itself (each costs the server a process start).
        connection = await asyncpg.connect(self.url(name))
        try:
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
        finally:
            await connection.close()

    async def rows_deleted(self, name: str) -> bool:
        """Delete every row but the versions', restart the sequences; say whether it is as newly
        migrated (the reference: a new database migrated by the app's own code, once a session).
        """
        if self.newest_signature is None:
            self.newest_signature = await self.reference()
        connection = await asyncpg.connect(self.url(name))
        try:
            await connection.execute(END_OTHER_CONNECTIONS)
            tables, sequences = await tables_and_sequences(connection)
            # No trigger fires (a deleted post announces nothing) and no foreign key is checked:
            # every table is emptied, in any order. One round trip.
            script = ["SET LOCAL session_replication_role = replica"]
            script += [f"DELETE FROM {table}" for table in tables if table != VERSIONS]
            script += [f"ALTER SEQUENCE {sequence} RESTART" for sequence in sequences]
            async with connection.transaction():
                await connection.execute(";".join(script))
            return await migrated_signature(connection, tables) == self.newest_signature
        finally:
            await connection.close()

    async def reference(self) -> tuple[object, ...]:
        """Migrate a new database with the app's migrations; return its signature, keep it."""
        name = await self.lease()
        async with opened({"DATABASE": self.url(name)}, pool_size=1):
            pass
        connection = await asyncpg.connect(self.url(name))
        try:
            reference = await migrated_signature(
                connection, (await tables_and_sequences(connection))[0]
            )
        finally:
            await connection.close()
        self.spare_migrated.append(name)
        return reference
