"""Fixtures: an app serving a fresh database file per test, its client, and login helpers."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.testing import QuartClient

from tests import servers
from tests.helpers import AuthActions
from tests.helpers import serving
from tests.postgres_server import private_postgres
from tests.postgres_server import run_as_admin
from tests.postgres_server import with_database
from tests.run_order import rotated
from tests.servers import ARTIFACTS
from tests.servers import TEST_SECRET_KEY
from tests.template_code import SharedTemplateCode

BACKENDS = ("sqlite", "postgresql")


SESSION_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note when the run began, to tell its screenshots from older ones."""
    session.config.stash[SESSION_STARTED] = time.time()


def pytest_configure(config: pytest.Config) -> None:
    """Let every app of the run reuse the templates another compiled (tests/template_code.py)."""
    Quart.jinja_options = {**Quart.jinja_options, "bytecode_cache": SharedTemplateCode()}


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """List the screenshots this run took, so their paths are in the output, pass or fail."""
    began = config.stash[SESSION_STARTED]
    shots = sorted(path for path in ARTIFACTS.glob("*.png") if path.stat().st_mtime >= began)
    if shots:
        terminalreporter.section("screenshots")
        for path in shots:
            terminalreporter.write_line(str(path.relative_to(ARTIFACTS.parent)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses a database on each backend, unless it is SQLite-only."""
    if "backend" in metafunc.fixturenames:
        only = [name for name in BACKENDS if metafunc.definition.get_closest_marker(f"{name}_only")]
        metafunc.parametrize("backend", only or BACKENDS)


SYSTEM = Path(__file__).parent / "system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark system every test that needs a real server process: ``-m "not system"`` skips them.

    Those are tests/system/ (hypercorn, nginx, a browser), every test on the PostgreSQL backend
    and the few elsewhere marked by hand; a test that starts a server unmarked fails.
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgresql"
        if (
            SYSTEM in item.path.parents
            or on_postgres
            or "postgres_server" in getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.system)
    items[:] = rotated(items, float(os.environ.get("TEST_ORDER_START", "0")))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Let only a test marked system start a real server (tests/servers.py checks this)."""
    servers.may_start_servers = item.get_closest_marker("system") is not None


@pytest.fixture
def backend() -> str:
    """Name the database backend under test (parametrised by pytest_generate_tests)."""
    return "sqlite"  # pragma: no cover - always overridden by the parametrisation


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Yield the admin URL of a PostgreSQL server: TEST_DATABASE_URL, or a private one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    try:
        with private_postgres() as private_url:
            yield private_url
    except (OSError, subprocess.SubprocessError) as error:
        message = f"PostgreSQL tests skipped: cannot start a server ({error})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


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
# Every schema but the system's is dropped; public is made again as a new database has it.
NEW_PUBLIC = (
    "CREATE SCHEMA public AUTHORIZATION pg_database_owner;"
    " GRANT USAGE ON SCHEMA public TO PUBLIC;"
    " COMMENT ON SCHEMA public IS 'standard public schema'"
)


async def signature(connection: asyncpg.Connection) -> tuple[object, ...]:
    """Return what a database holds (CATALOG_SIGNATURE)."""
    return tuple(await connection.fetchrow(CATALOG_SIGNATURE))


@dataclass
class DatabasePool:
    """Emptied test databases on the session's PostgreSQL server, and what a new one holds."""

    server: str
    spare: list[str] = field(default_factory=list)
    new_signature: tuple[object, ...] | None = None

    async def lease(self) -> str:
        """Return the name of an empty database: an emptied one, else a new one."""
        if self.spare:
            return self.spare.pop()
        name = f"test_{uuid.uuid4().hex[:16]}"
        await run_as_admin(self.server, f'CREATE DATABASE "{name}"')
        if self.new_signature is None:
            connection = await asyncpg.connect(with_database(self.server, name))
            try:
                self.new_signature = await signature(connection)
            finally:
                await connection.close()
        return name

    async def give_back(self, name: str) -> None:
        """Empty a used database for the next test, or drop it if it would not be as new."""
        if await self.emptied(name):
            self.spare.append(name)
        else:
            await run_as_admin(self.server, f'DROP DATABASE "{name}" WITH (FORCE)')

    async def emptied(self, name: str) -> bool:
        """Drop every schema the test made or filled; say whether the database is as new."""
        # One connection, to the database itself (each costs the server a process start).
        connection = await asyncpg.connect(with_database(self.server, name))
        try:
            # What DROP DATABASE ... WITH (FORCE) does: end the connections a test left.
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
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


@pytest.fixture(scope="session")
def database_pool(postgres_server: str) -> DatabasePool:
    """Return the session's pool of emptied PostgreSQL test databases.

    Creating a database and dropping it cost the server more CPU than the test between them
    (about 0.2 s a test, some 300 tests a run); emptying one for the next test costs a fifth.
    """
    return DatabasePool(postgres_server)


@pytest.fixture
async def database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """Yield a fresh, empty database of the backend under test."""
    if backend == "sqlite":
        yield str(tmp_path / "flaskr.sqlite")
        return
    pool: DatabasePool = request.getfixturevalue("database_pool")
    name = await pool.lease()
    yield with_database(pool.server, name)
    await pool.give_back(name)


@pytest.fixture
def app_config(database_url: str) -> dict[str, Any]:
    """Return the settings of the test app: its own database, no files read."""
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE": database_url,
        # CSRF has its own tests; the Flaskr tests post bare forms.
        "WTF_CSRF_ENABLED": False,
    }


@pytest.fixture
async def app(app_config: dict[str, Any]) -> AsyncIterator[Quart]:
    """Serve the app of the test settings."""
    async with serving(app_config) as app:
        yield app


@pytest.fixture
def csrf_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """Return the test settings with CSRF protection on, as it is when serving."""
    return {**app_config, "WTF_CSRF_ENABLED": True}


@pytest.fixture
async def csrf_app(csrf_config: dict[str, Any]) -> AsyncIterator[Quart]:
    """Serve an app that checks CSRF tokens, on the fixture rows."""
    async with serving(csrf_config) as app:
        yield app


@pytest.fixture
def client(app: Quart) -> QuartClient:
    """Return a test client of the serving app."""
    test_client = app.test_client()
    assert isinstance(test_client, QuartClient)
    return test_client


@pytest.fixture
def auth(client: QuartClient) -> AuthActions:
    """Return login helpers bound to the client."""
    return AuthActions(client)


def database_threads() -> list[threading.Thread]:
    """Return the live aiosqlite worker threads."""
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


@pytest.fixture(autouse=True)
def no_database_thread_left() -> Iterator[None]:
    """Fail a test that leaves an aiosqlite connection (and its thread) open."""
    before = set(database_threads())
    yield
    deadline = time.monotonic() + 2
    while (leaked := set(database_threads()) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked, f"aiosqlite connections left open: {leaked}"
