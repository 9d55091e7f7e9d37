"""Schema versions on every backend: upgrades from every shipped schema, locks, refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart.testing.app import LifespanError
from werkzeug.security import generate_password_hash

from flaskr_async import create_app
from flaskr_async.db import Connection
from flaskr_async.db import migrations
from flaskr_async.db import opened
from flaskr_async.db.migrations import Migration
from flaskr_async.db.migrations import known_migrations
from flaskr_async.db.migrations.registry import collect
from flaskr_async.db.postgres import numbered_placeholders
from flaskr_async.db.schema import TABLES
from tests.helpers import private_sqlite
from tests.postgres_server import with_database

LEGACY = Path(__file__).parent / "legacy"
MIGRATIONS = known_migrations()
NEWEST = len(MIGRATIONS)
Rows = list[tuple[Any, ...]]


def dialect_of(backend: str) -> str:
    """Name the SQL dialect of a backend, as step files are suffixed."""
    return "postgres" if backend == "postgresql" else "sqlite"


async def query(backend: str, url: str, sql: str, params: Sequence[Any] = ()) -> Rows:
    """Run one query on a connection of its own, with the driver alone; return its rows."""
    if backend == "sqlite":
        with private_sqlite(url) as db:
            return [tuple(row) for row in db.execute(sql, params).fetchall()]
    db = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await db.fetch(numbered_placeholders(sql), *params)]
    finally:
        await db.close()


async def execute(backend: str, url: str, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Run statements in one transaction on a connection of their own, with the driver alone."""
    if backend == "sqlite":
        with private_sqlite(url) as db, db:
            db.execute("PRAGMA foreign_keys = ON")
            for sql, params in statements:
                db.execute(sql, params)
        return
    db = await asyncpg.connect(url)
    try:
        async with db.transaction():
            for sql, params in statements:
                await db.execute(numbered_placeholders(sql), *params)
    finally:
        await db.close()


async def catalog(backend: str, url: str) -> dict[str, Rows]:
    """Describe every table, column, key, index and rule, comparably across databases.

    Column order is left out: ALTER TABLE appends a column, so the databases older versions
    upgraded already differ in it from those they made new, and no query depends on it.
    """
    if backend == "sqlite":
        tables = [row[0] for row in await query(backend, url, SQLITE_TABLES)]
        described: dict[str, Rows] = {"objects": await query(backend, url, SQLITE_OBJECTS)}
        for table in tables:
            for part, sql in SQLITE_PARTS.items():
                described[f"{table} {part}"] = sorted(await query(backend, url, sql, (table,)))
            indexes = []
            for index in await query(backend, url, SQLITE_INDEXES, (table,)):
                columns = await query(backend, url, SQLITE_INDEX_COLUMNS, (index[0],))
                indexes.append((*index, tuple(columns)))
            described[f"{table} indexes"] = sorted(indexes)
        return described
    return {part: await query(backend, url, sql) for part, sql in POSTGRES_PARTS.items()}


SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
# The objects' names and kinds, and whether each table counts its ids (AUTOINCREMENT).
SQLITE_OBJECTS = (
    "SELECT type, name, tbl_name, instr(upper(sql), 'AUTOINCREMENT') > 0 FROM sqlite_master"
    " WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY name"
)
SQLITE_PARTS = {
    "columns": 'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)',
    "keys": 'SELECT "table", "from", "to", on_update, on_delete FROM pragma_foreign_key_list(?)',
}
SQLITE_INDEXES = 'SELECT name, "unique", origin, partial FROM pragma_index_list(?)'
SQLITE_INDEX_COLUMNS = "SELECT name FROM pragma_index_info(?) ORDER BY seqno"
POSTGRES_PARTS = {
    "columns": (
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity,"
        " identity_generation FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY 1, 2"
    ),
    "constraints": (
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2"
    ),
    "indexes": (
        "SELECT tablename, indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = current_schema() ORDER BY 1, 2"
    ),
    "rules": (
        "SELECT tablename, rulename, definition FROM pg_rules"
        " WHERE schemaname = current_schema() ORDER BY 1, 2"
    ),
    "sequences": (
        "SELECT sequence_name FROM information_schema.sequences"
        " WHERE sequence_schema = current_schema() ORDER BY 1"
    ),
}


@asynccontextmanager
async def another_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """Yield a second empty database of the backend, beside the test's own."""
    if backend == "sqlite":
        yield str(tmp_path / f"{uuid.uuid4().hex}.sqlite")
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def config(app_config: dict[str, Any]) -> dict[str, Any]:
    """Return the settings of the test app, with every default filled in."""
    return dict(create_app(app_config).config)


async def start(config: dict[str, Any]) -> None:
    """Open the database as a starting worker does (upgrading it), then close it."""
    async with opened(config, pool_size=1):
        pass


async def fresh_catalog(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """Return the catalog of a new database, made from the schema file."""
    async with another_database(backend, tmp_path, request) as url:
        await start(dict(create_app({"TESTING": True, "DATABASE": url}).config))
        return await catalog(backend, url)


async def versions(backend: str, url: str) -> list[int]:
    """Return the versions schema_version records, in order."""
    return [
        row[0] for row in await query(backend, url, "SELECT version FROM schema_version ORDER BY 1")
    ]


# What each shipped schema holds: Flaskr's user and post, then this app's tables as each
# version added them. Password hashes as Flaskr's werkzeug made them (cheap, for speed).
HASHES = [generate_password_hash(name, method="pbkdf2:sha256:1000") for name in ("a", "b", "c")]


def fixture_rows(version: int) -> list[tuple[str, Sequence[Any]]]:
    """Return the statements that fill a database of ``version`` as its code would have."""
    keyed = version >= 4
    users = [("alice", "alice", HASHES[0]), ("Bob", "bob", HASHES[1])]
    statements: list[tuple[str, Sequence[Any]]] = [
        (
            'INSERT INTO "user" (username, username_key, password) VALUES (?, ?, ?)'
            if keyed
            else 'INSERT INTO "user" (username, password) VALUES (?, ?)',
            user if keyed else (user[0], user[2]),
        )
        for user in users
    ]
    if keyed:  # written by a version before 4, still serving beside this one
        statements.append(
            ('INSERT INTO "user" (username, password) VALUES (?, ?)', ("carol", HASHES[2]))
        )
    for author, title in ((1, "first"), (2, "second"), (1, "third")):
        statements.append(
            ("INSERT INTO post (author_id, title, body) VALUES (?, ?, 'body')", (author, title))
        )
    # Its id is never given again (SQLite's AUTOINCREMENT, PostgreSQL's identity).
    statements.append(("DELETE FROM post WHERE title = 'third'", ()))
    if version >= 3:
        statements += [
            (
                "INSERT INTO user_session (id_hash, user_id, created_at, last_seen_at)"
                " VALUES (?, ?, ?, ?)",
                (f"hash-{n}", n, 1700000000.5 + n, 1700000100.25 + n),
            )
            for n in (1, 2)
        ]
        statements.append(
            (
                "INSERT INTO login_attempt (username, address, attempted_at) VALUES (?, ?, ?)",
                ("alice", "192.0.2.1", 1700000000.0),
            )
        )
    if version >= 5:
        statements.append(("INSERT INTO post_event (post_id, kind) VALUES (1, 'created')", ()))
    return statements


async def make_legacy(backend: str, url: str, version: int, *, half_upgraded: bool = False) -> None:
    """Make a database of a shipped schema (its file as shipped) holding its code's rows."""
    dialect = dialect_of(backend)
    script = (LEGACY / f"v{version}.{dialect}.sql").read_text()
    if half_upgraded:  # Flaskr's, upgraded by the last version without schema_version
        script += (LEGACY / f"v5.{dialect}.sql").read_text()
        script = script.replace(
            "CREATE UNIQUE INDEX",
            'ALTER TABLE "user" ADD COLUMN username_key TEXT;\nCREATE UNIQUE INDEX',
            1,
        )
    if backend == "sqlite":
        with private_sqlite(url) as db:
            db.executescript(script)
    else:
        db = await asyncpg.connect(url)
        try:
            await db.execute(script)
        finally:
            await db.close()
    await execute(backend, url, fixture_rows(5 if half_upgraded else version))


KEPT = {
    "user": 'SELECT id, username, password FROM "user" ORDER BY id',
    "post": "SELECT id, author_id, created, title, body FROM post ORDER BY id",
    "user_session": (
        "SELECT id_hash, user_id, created_at, last_seen_at FROM user_session ORDER BY id_hash"
    ),
}


async def kept_rows(backend: str, url: str, version: int) -> dict[str, Rows]:
    """Return the rows an upgrade must keep: users with their hashes, posts, sessions."""
    tables = KEPT if version >= 3 else {k: v for k, v in KEPT.items() if k != "user_session"}
    return {table: await query(backend, url, sql) for table, sql in tables.items()}


SHIPPED = {
    "1 Flaskr": (1, False),
    "2 first release": (2, False),
    "3 sessions": (3, False),
    "4 username keys": (4, False),
    "5 post events": (5, False),
    "1 Flaskr, half upgraded by 5's code": (1, True),
}


@pytest.mark.parametrize("case", SHIPPED)
async def test_every_shipped_schema_upgrades_keeping_every_row(
    backend: str,
    database_url: str,
    config: dict[str, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    case: str,
) -> None:
    version, half_upgraded = SHIPPED[case]
    await make_legacy(backend, database_url, version, half_upgraded=half_upgraded)
    before = await kept_rows(backend, database_url, version)

    await start(config)

    assert await kept_rows(backend, database_url, version) == before
    assert await versions(backend, database_url) == list(range(1, NEWEST + 1))
    assert await catalog(backend, database_url) == await fresh_catalog(backend, tmp_path, request)
    keys = await query(backend, database_url, 'SELECT username_key FROM "user" ORDER BY id')
    assert [key for (key,) in keys] == ["alice", "bob", "carol"][: len(keys)]
    # A post's id is never given again, and a user's posts go with the user.
    await execute(
        backend,
        database_url,
        [("INSERT INTO post (author_id, title, body) VALUES (2, 'new', '')", ())],
    )
    await execute(backend, database_url, [('DELETE FROM "user" WHERE id = 1', ())])
    assert await query(backend, database_url, "SELECT id, title FROM post ORDER BY id") == [
        (2, "second"),
        (4, "new"),
    ]


async def test_posts_the_live_history_saw_edited_are_marked_edited(
    backend: str, database_url: str, config: dict[str, Any]
) -> None:
    """Migration 8 marks a post edited when the live index's events hold an edit of it."""
    await make_legacy(backend, database_url, 5)
    # Literal times: each backend reads one as its own timestamp type.
    events = [
        "(2, 'updated', '2026-01-02 03:04:05')",
        "(2, 'updated', '2026-03-04 05:06:07')",
        "(3, 'updated', '2026-05-06 07:08:09')",
        "(3, 'deleted', '2026-05-06 07:09:00')",
    ]
    insert = f"INSERT INTO post_event (post_id, kind, at) VALUES {', '.join(events)}"
    await execute(backend, database_url, [(insert, ())])

    await start(config)

    edited = await query(
        backend,
        database_url,
        "SELECT p.id FROM post p JOIN post_event e ON e.post_id = p.id AND e.at = p.updated",
    )
    assert edited == [(2,)]  # at its newest edit
    # Post 1 has its creation's event alone (fixture_rows); post 3 is gone.
    never = await query(backend, database_url, "SELECT id FROM post WHERE updated IS NULL")
    assert never == [(1,)]


async def test_the_schema_file_is_the_sum_of_the_migrations(
    backend: str, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dialect = migrations.POSTGRES if backend == "postgresql" else migrations.SQLITE
    config = dict(create_app({"TESTING": True, "DATABASE": database_url}).config)
    # An empty database's first start makes the schema file's tables; drop them all.
    async with opened(config, pool_size=1) as database, database.lease() as db:
        async with db.transaction():
            for table in TABLES:
                await db.execute(dialect.drop.format(table=table))
            await db.execute(dialect.version_table)
            for step in MIGRATIONS:
                await step.apply(db, dialect)
    assert await catalog(backend, database_url) == await fresh_catalog(backend, tmp_path, request)


async def test_a_new_database_is_stamped_with_every_version(
    backend: str, database_url: str, config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", "flaskr_async")
    await start(config)
    await start(config)  # the second start finds it current: nothing applied, nothing logged
    assert await versions(backend, database_url) == list(range(1, NEWEST + 1))
    names = await query(backend, database_url, "SELECT name FROM schema_version ORDER BY version")
    assert [name for (name,) in names] == [step.name for step in MIGRATIONS]
    logged = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert logged == [f"New database made at schema version {NEWEST}"]


@pytest.mark.parametrize("empty", [True, False])
async def test_many_starting_at_once_apply_each_step_once(
    backend: str,
    database_url: str,
    config: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    empty: bool,
) -> None:
    caplog.set_level("INFO", "flaskr_async")
    if not empty:
        await make_legacy(backend, database_url, 1)

    async def start_and_read() -> int:
        async with opened(config, pool_size=1) as database:
            row = await database.fetch_one("SELECT max(version) AS version FROM schema_version")
        assert row is not None
        return int(row["version"])

    seen = await asyncio.gather(*(start_and_read() for _ in range(8)))

    assert seen == [NEWEST] * 8
    assert await versions(backend, database_url) == list(range(1, NEWEST + 1))
    logged = [r.getMessage() for r in caplog.records if r.name == "flaskr_async.db.migrations"]
    if empty:
        assert logged.count(f"New database made at schema version {NEWEST}") == 1
    else:
        assert logged.count("Database without schema versions recognised as version 1") == 1
        for step in MIGRATIONS[1:]:
            assert logged.count(f"Schema migration {step.version} ({step.name}) applied") == 1


async def everything(backend: str, url: str) -> Any:
    """Return the catalog and every row of every table: what a refused start must not change."""
    tables = sorted(name for (name,) in await query(backend, url, ALL_TABLES[backend]))
    rows = {
        table: sorted(map(repr, await query(backend, url, f'SELECT * FROM "{table}"')))
        for table in tables
    }
    return await catalog(backend, url), rows


POSTGRES_TABLES = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    " ORDER BY 1"
)


async def test_a_database_newer_than_the_code_is_refused_untouched(
    backend: str,
    database_url: str,
    config: dict[str, Any],
    app_config: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start(config)
    await execute(
        backend,
        database_url,
        [("INSERT INTO schema_version (version, name) VALUES (?, ?)", (NEWEST + 1, "later"))],
    )
    if backend == "sqlite":
        before: Any = Path(database_url).read_bytes()
    else:
        before = await everything(backend, database_url)
    caplog.clear()

    app = create_app(app_config)
    with pytest.raises(LifespanError, match="newer than this code"):
        async with app.test_app():
            pass  # pragma: no cover - start-up fails
    # In a thread: the command runs its own event loop, as it does from a terminal.
    runner = app.test_cli_runner()
    result = await asyncio.to_thread(runner.invoke, args=["init-db", "--if-missing"])

    message = (
        f"The database is at schema version {NEWEST + 1}, newer than this code's {NEWEST}:"
        " deploy the newer code, or restore a backup made for this version."
    )
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [message]
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\n"
    if backend == "sqlite":
        assert Path(database_url).read_bytes() == before
    else:
        assert await everything(backend, database_url) == before


def create_table(name: str) -> Any:
    """Return a Python step that creates a table."""

    async def step(connection: Connection, _dialect: str) -> None:
        await connection.execute(f"CREATE TABLE {name} (id INTEGER)")

    return step


async def test_a_failed_step_leaves_the_version_before_it(
    backend: str,
    database_url: str,
    app_config: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await start(dict(create_app(app_config).config))

    async def broken(connection: Connection, dialect: str) -> None:
        await connection.execute("CREATE TABLE seven (id INTEGER PRIMARY KEY)")
        # PostgreSQL's error has a second line (DETAIL: Key (id)=(1) already exists).
        await connection.execute("INSERT INTO seven (id) VALUES (1), (1)")

    steps = [
        *MIGRATIONS,
        Migration(NEWEST + 1, "six", {}, create_table("six")),
        Migration(NEWEST + 2, "broken", {}, broken),
    ]
    monkeypatch.setattr(migrations, "known_migrations", lambda: steps)
    caplog.clear()
    app = create_app(app_config)
    with pytest.raises(LifespanError, match="broken"):
        async with app.test_app():
            pass  # pragma: no cover - start-up fails

    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors[0].startswith(
        f"Schema migration {NEWEST + 2} (broken) failed, the database stays at version"
        f" {NEWEST + 1}: "
    )
    assert "seven" in errors[0] and "\n" not in errors[0]
    if backend == "postgresql":
        assert "DETAIL: Key (id)=(1) already exists." in errors[0]
    assert await versions(backend, database_url) == list(range(1, NEWEST + 2))
    tables = {name for (name,) in await query(backend, database_url, ALL_TABLES[backend])}
    assert "six" in tables and "seven" not in tables


ALL_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": POSTGRES_TABLES,
}


async def test_steps_up_to_a_version(
    backend: str, database_url: str, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_legacy(backend, database_url, 1)
    monkeypatch.setattr(migrations, "known_migrations", lambda: MIGRATIONS[:3])
    await start(config)
    assert await versions(backend, database_url) == [1, 2, 3]
    tables = {name for (name,) in await query(backend, database_url, ALL_TABLES[backend])}
    assert "user_session" in tables and "post_event" not in tables


# A database older than schema_version that lost one object (or kept one it should not):
# start-up recognises the version its tables show and completes it.
DAMAGES = [
    "DROP TABLE post",
    "CREATE TABLE login_failure (id INTEGER)",
    "DROP INDEX user_session_user",
    "DROP INDEX login_attempt_device",
    "DROP INDEX user_username_key_unique",
    "DROP TABLE post_event",
]


async def completes_after(
    damage: str,
    backend: str,
    database_url: str,
    config: dict[str, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Damage a new database, drop its schema_version, restart: it is whole again."""
    await start(config)
    await execute(backend, database_url, [("DROP TABLE schema_version", ()), (damage, ())])
    await start(config)
    assert await catalog(backend, database_url) == await fresh_catalog(backend, tmp_path, request)


@pytest.mark.parametrize("damage", DAMAGES)
async def test_an_unversioned_database_missing_an_object_is_completed(
    backend: str,
    database_url: str,
    config: dict[str, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    damage: str,
) -> None:
    await completes_after(damage, backend, database_url, config, tmp_path, request)


@pytest.mark.postgresql_only
async def test_an_unversioned_database_missing_its_notify_rule_is_completed(
    backend: str,
    database_url: str,
    config: dict[str, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    damage = "DROP RULE post_event_notify ON post_event"
    await completes_after(damage, backend, database_url, config, tmp_path, request)


async def test_an_emptied_version_table_is_stamped_again(
    backend: str, database_url: str, config: dict[str, Any]
) -> None:
    await start(config)
    await execute(backend, database_url, [("DELETE FROM schema_version", ())])
    await start(config)
    assert await versions(backend, database_url) == list(range(1, NEWEST + 1))


async def test_init_db_leaves_the_newest_version(
    backend: str, database_url: str, config: dict[str, Any]
) -> None:
    await make_legacy(backend, database_url, 1)
    runner = create_app(config).test_cli_runner()
    result = await asyncio.to_thread(runner.invoke, args=["init-db", "--yes"])
    assert result.exit_code == 0, result.output
    assert await versions(backend, database_url) == list(range(1, NEWEST + 1))
    assert await query(backend, database_url, 'SELECT count(*) FROM "user"') == [(0,)]


# The runner's numbering of step files: (files, Python step numbers, the error or the names).
COLLECTED = {
    "files and a Python step": (
        ["0001_a.sql", "0002_b.sqlite.sql", "0002_b.postgres.sql", "README", "__init__.py"],
        [3],
        ["a", "b", "py"],
    ),
    "SQL and Python for one step": (["0001_py.sql"], [1], ["py"]),
    "a gap": (["0001_a.sql", "0003_c.sql"], [], "Schema migration 2 is missing"),
    "two of a number": (["0001_a.sql", "0001_b.sql"], [], "Two schema migrations are numbered 1"),
    "one file twice": (["0001_a.sql", "0001_a.sqlite.sql"], [], "numbered 1"),
    "a Python step on a taken number": (["0001_a.sql"], [1], "numbered 1"),
    "one backend only": (["0001_a.sqlite.sql"], [], "Schema migration 1 has SQL for sqlite only"),
}


@pytest.mark.parametrize("case", COLLECTED)
def test_step_files_are_numbered_one_two_three(case: str) -> None:
    files, python, expected = COLLECTED[case]

    async def step(connection: Connection, dialect: str) -> None:
        """Do nothing (never run)."""

    steps = {number: ("py", step) for number in python}
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            collect(files, steps)
        return
    collected = collect(files, steps)
    assert [(m.version, m.name) for m in collected] == list(enumerate(expected, start=1))


@pytest.mark.parametrize("version", ["1 Flaskr", "newer than the code"])
async def test_a_backup_copies_the_database_as_it_is(
    backend: str, database_url: str, config: dict[str, Any], tmp_path: Path, version: str
) -> None:
    if version == "1 Flaskr":  # a copy made before an upgrade must hold the old schema
        await make_legacy(backend, database_url, 1)
    else:  # after a rollback the database can still be copied
        await start(config)
        insert = "INSERT INTO schema_version (version, name) VALUES (?, ?)"
        await execute(backend, database_url, [(insert, (NEWEST + 1, "later"))])
    before = await everything(backend, database_url)
    runner = create_app(config).test_cli_runner()
    target = tmp_path / "copy"
    result = await asyncio.to_thread(runner.invoke, args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    assert await everything(backend, database_url) == before
    if backend == "sqlite":  # pg_dump's archive is read by pg_restore, checked in test_postgres
        assert await everything(backend, str(target)) == before


@pytest.mark.sqlite_only
async def test_a_start_waits_past_the_busy_timeout_for_another_migration(
    database_url: str, config: dict[str, Any]
) -> None:
    await make_legacy("sqlite", database_url, 1)
    with private_sqlite(database_url) as other:
        other.execute("PRAGMA journal_mode = WAL")  # as the first process to start left it
        other.execute("BEGIN IMMEDIATE")  # that process's step, holding the write lock
        starting = asyncio.create_task(start({**config, "SQLITE_BUSY_TIMEOUT": 0.2}))
        await asyncio.sleep(1)  # five busy timeouts
        assert not starting.done()  # still waiting, not failed with "database is locked"
        other.rollback()
        await asyncio.wait_for(starting, 30)
    assert await versions("sqlite", database_url) == list(range(1, NEWEST + 1))
