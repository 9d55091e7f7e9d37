"""Fixtures: an app serving a fresh database file per test, its client, and login helpers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from quart import Quart
from quart.testing import QuartClient

from flaskr_async.accounts import passwords
from tests import servers
from tests.helpers import AuthActions
from tests.helpers import serving
from tests.postgres_databases import DatabasePool
from tests.postgres_server import private_postgres
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
    start = float(os.environ.get("TEST_ORDER_START", "0"))
    items[:] = rotated(items, start, expected_seconds(items))


def expected_seconds(items: list[pytest.Item]) -> Callable[[pytest.Item], float]:
    """Return what each of these tests takes, about: its kind's average (3.11, 2026-12-06).

    Those averages add up to the suite's measured time within 1 %: 96 tests in tests/system/,
    409 in process on PostgreSQL, and 1,900 others, of which a test function's first case takes
    five times each further one (it pays for the imports and fixtures they share).
    """
    first_cases: dict[tuple[Path, str], pytest.Item] = {}
    for item in items:
        first_cases.setdefault((item.path, getattr(item, "originalname", item.name)), item)

    def seconds(item: pytest.Item) -> float:
        if SYSTEM in item.path.parents:
            return 1.6  # real servers, nginx, a browser
        if item.get_closest_marker("system") is not None:
            return 0.1  # in process, on PostgreSQL (or starting a server of its own)
        first = first_cases[(item.path, getattr(item, "originalname", item.name))] is item
        return 0.1 if first else 0.02

    return seconds


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


@pytest.fixture(scope="session")
def database_pool(postgres_server: str) -> Iterator[DatabasePool]:
    """Yield the session's pool of PostgreSQL test databases (tests/postgres_databases.py)."""
    pool = DatabasePool(postgres_server)
    yield pool
    asyncio.run(pool.close())  # on TEST_DATABASE_URL's server they would stay


# The fixtures that serve the app: by the time their test begins, its start-up has migrated the
# database, whatever it was given; so they are given one that may be migrated already.
SERVED = {"app", "csrf_app", "live_app"}


@pytest.fixture
async def database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """Yield a fresh database of the backend under test: empty, unless the app fixtures serve it."""
    if backend == "sqlite":
        yield str(tmp_path / "flaskr.sqlite")
        return
    pool: DatabasePool = request.getfixturevalue("database_pool")
    migrated = not SERVED.isdisjoint(request.fixturenames)
    name = await pool.lease(migrated=migrated)
    yield pool.url(name)
    await pool.give_back(name, migrated=migrated)


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


# In-process tests hash passwords at argon2id's smallest cost, as Django advises for test
# settings: at OWASP's cost a check takes 18 ms of CPU, and a suite's ~2,000 of them were an
# eighth of its CPU. What a hash costs is checked by the tests marked `production_password_cost`,
# which hash as the app does, and by every real server (tests/system/), which always does.
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
TEST_DUMMY_HASH = TEST_HASHER.hash("no such user")


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hash at argon2id's smallest cost (tests/data.sql's too), unless the test is marked."""
    if request.node.get_closest_marker("production_password_cost") is not None:
        yield
        return
    # A patch of its own: a test's monkeypatch.undo() must not bring the app's cost back.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "HASHER", TEST_HASHER)
        patch.setattr(passwords, "DUMMY_HASH", TEST_DUMMY_HASH)
        yield


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
