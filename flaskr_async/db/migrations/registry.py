"""The numbered steps, found beside this module, and each backend's SQL for the runner."""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from flaskr_async.db.interface import Connection
from flaskr_async.db.migrations.steps import PYTHON_STEPS
from flaskr_async.db.migrations.steps import Step
from flaskr_async.db.schema import split_statements

# PostgreSQL's advisory lock for schema changes, the id every earlier version took too, so
# that hosts of both versions take turns during a rolling deploy.
SCHEMA_LOCK = 0x666C61736B72  # "flaskr"
STEP_FILE = re.compile(r"(\d{4})_(\w+?)(?:\.(sqlite|postgres))?\.sql")
DIALECTS = ("sqlite", "postgres")
PACKAGE = "flaskr_async.db.migrations"  # where the step files are


@dataclass(frozen=True)
class Dialect:
    """What the runner needs to know of one backend's SQL."""

    name: str  # "sqlite" or "postgres": the middle suffix of its own step files
    schema: str  # the file a new database is made from
    lock: str  # the first statement of every schema transaction ("": none needed)
    objects: str  # the names of the tables, indexes and rules there are
    cascades: str  # a row when a user's posts are deleted with the user
    version_table: str
    drop: str  # how a table is dropped, with {table} for its name


SQLITE = Dialect(
    name="sqlite",
    schema="schema.sql",
    lock="",  # BEGIN IMMEDIATE already holds the database's one write lock
    objects="SELECT name FROM sqlite_master",
    cascades=(
        "SELECT 1 FROM pragma_foreign_key_list('post')"
        " WHERE \"table\" = 'user' AND on_delete = 'CASCADE'"
    ),
    version_table=(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ),
    drop='DROP TABLE IF EXISTS "{table}"',
)
POSTGRES = Dialect(
    name="postgres",
    schema="schema_postgres.sql",
    lock=f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})",
    objects=(
        "SELECT relname AS name FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        " UNION ALL SELECT rulename FROM pg_rules WHERE schemaname = current_schema()"
    ),
    cascades=(
        "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass('post')"
        " AND contype = 'f' AND confdeltype = 'c'"
    ),
    version_table=(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ),
    drop='DROP TABLE IF EXISTS "{table}" CASCADE',
)


@dataclass(frozen=True)
class Migration:
    """One numbered step: SQL for each backend, or a Python step, or both (SQL first)."""

    version: int
    name: str
    sql: dict[str, str]  # dialect name -> file name, beside this module
    python: Step | None = None

    async def apply(self, connection: Connection, dialect: Dialect) -> None:
        """Run the step's SQL, then its Python, inside the caller's transaction."""
        if dialect.name in self.sql:
            script = resources.files(PACKAGE).joinpath(self.sql[dialect.name]).read_text()
            for statement in split_statements(script):
                await connection.execute(statement)
        if self.python is not None:
            await self.python(connection, dialect.name)


def collect(files: Sequence[str], python: Mapping[int, tuple[str, Step]]) -> tuple[Migration, ...]:
    """Number the step files and Python steps 1, 2, 3...; refuse a gap or two of a number."""
    names: dict[int, str] = {}
    sql: dict[int, dict[str, str]] = {}
    for file in sorted(files):
        match = STEP_FILE.fullmatch(file)
        if match is None:
            continue
        number, name = int(match[1]), match[2]
        dialects = [match[3]] if match[3] else list(DIALECTS)
        scripts = sql.setdefault(number, {})
        if names.setdefault(number, name) != name or scripts.keys() & set(dialects):
            raise ValueError(f"Two schema migrations are numbered {number}: renumber one.")
        scripts.update(dict.fromkeys(dialects, file))
    for number, (name, _) in python.items():
        if names.setdefault(number, name) != name:
            raise ValueError(f"Two schema migrations are numbered {number}: renumber one.")
    migrations = []
    for expected, number in enumerate(sorted(names), start=1):
        if number != expected:
            raise ValueError(f"Schema migration {expected} is missing: number them 1, 2, 3...")
        scripts = sql.get(number, {})
        if scripts and scripts.keys() != set(DIALECTS):
            raise ValueError(f"Schema migration {number} has SQL for {', '.join(scripts)} only.")
        step = python[number][1] if number in python else None
        migrations.append(Migration(number, names[number], scripts, step))
    return tuple(migrations)


@cache
def known_migrations() -> tuple[Migration, ...]:
    """Return every step this code knows, numbered from 1 (listed on first use, not at import)."""
    return collect([path.name for path in resources.files(PACKAGE).iterdir()], PYTHON_STEPS)


def schema_file_version() -> int:
    """Return the version the schema files are at: the newest step's (a new database is there)."""
    return len(known_migrations())
