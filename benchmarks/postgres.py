"""The postgres phase: PostgreSQL against SQLite, index and create at c64, with 1 and 2 workers.

Starts a private PostgreSQL (tests/postgres_server.py), seeds three databases of each backend,
runs profile_backends.py for where the time goes, then serves ``hypercorn -w N asgi:app`` on
each backend and drives GET / and POST /create (as the logged-in benchmark user), watching the
CPU time of the app's processes and of the PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx

from benchmarks import seed
from benchmarks import servers
from benchmarks.context import Context
from benchmarks.harness import ROOT
from benchmarks.harness import Server
from benchmarks.harness import Step
from tests.postgres_server import private_postgres
from tests.postgres_server import with_database

BACKENDS = ("sqlite", "postgresql")
ENDPOINTS = {"index": "/", "create": "/create"}
WORKERS = (1, 2)
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def run_phase(ctx: Context) -> None:
    """Seed both backends, print where the time goes, then measure every server interleaved."""
    print(
        "\n[pg] PostgreSQL vs SQLite: index (50 posts) and create, c64, hypercorn -w 1 and"
        " -w 2, the app's default pool per worker",
        flush=True,
    )
    with private_postgres() as admin:
        began = time.perf_counter()
        databases: dict[tuple[str, str], str] = {}
        for name in ("w1", "w2", "profile"):
            seed.create_postgres_database(admin, f"bench_{name}")
            databases["postgresql", name] = seed.seed_postgres(
                ctx.tree, with_database(admin, f"bench_{name}"), 100, ctx.password_hash
            )
            sqlite = ctx.workdir / f"compare-{name}.sqlite"
            seed.seed(ctx.template, sqlite, 100, ctx.password_hash)
            databases["sqlite", name] = str(sqlite)
        print(f"  seeded 3 + 3 databases in {time.perf_counter() - began:.2f} s", flush=True)
        ctx.results.breakdown = where_time_goes(
            ctx, databases["sqlite", "profile"], databases["postgresql", "profile"]
        )
        print(ctx.results.breakdown, flush=True)
        postmaster = postmaster_pid(admin)
        started: dict[tuple[str, int], Server] = {}
        try:
            for workers in WORKERS:
                for backend in BACKENDS:
                    started[backend, workers] = ctx.start(
                        f"compare-{backend}-w{workers}",
                        servers.hypercorn("asgi:app", workers),
                        ctx.env(databases[backend, f"w{workers}"], POSTS_PER_PAGE="50"),
                    )
            posts = {key: create_request(server) for key, server in started.items()}
            for key, server in started.items():
                ctx.warm(server, ENDPOINTS["index"])
                ctx.warm(server, ENDPOINTS["create"], posts[key])
            plan = [
                Step(
                    label(endpoint, backend, workers),
                    started[backend, workers],
                    path,
                    64,
                    posts[backend, workers] if endpoint == "create" else {},
                    {"app": started[backend, workers].process.pid, "postgres": postmaster},
                )
                for workers in WORKERS
                for endpoint, path in ENDPOINTS.items()
                for backend in BACKENDS
            ]
            ctx.results.postgres_labels = [step.label for step in plan]
            ctx.interleave(plan, ctx.options.pg_duration)
        finally:
            for server in started.values():
                server.stop()


def label(endpoint: str, backend: str, workers: int) -> str:
    """Return the label of one measurement of this phase, as the report finds it."""
    return f"{endpoint} {backend} w{workers} c64"


def where_time_goes(ctx: Context, sqlite: str, postgresql: str) -> str:
    """Run profile_backends.py on fresh databases of both backends; return what it printed."""
    result = subprocess.run(
        [
            *(servers.PYTHON, "-m", "benchmarks.profile_backends", "--tree", str(ctx.tree)),
            *("--sqlite", sqlite, "--postgresql", postgresql),
        ],
        cwd=ROOT,
        env=ctx.env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"profile_backends.py failed:\n{result.stderr}")
    return result.stdout.rstrip()


def postmaster_pid(url: str) -> int:
    """Return the pid of the PostgreSQL server's postmaster (the parent of every backend)."""

    async def backend_status() -> str:
        connection = await asyncpg.connect(url)
        try:
            pid = int(await connection.fetchval("SELECT pg_backend_pid()"))
            # Read while connected: the backend process ends with its connection.
            return Path(f"/proc/{pid}/status").read_text()
        finally:
            await connection.close()

    status = asyncio.run(backend_status())
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


def create_request(server: Server) -> dict[str, str]:
    """Log the benchmark user in; return report.lua's settings for POST /create as that user.

    The form's CSRF token belongs to the session, so every connection can send the same
    cookie and body. One POST by hand checks both, and where a successful create redirects.
    """
    with httpx.Client(base_url=server.url, timeout=30) as client:
        login = {"username": seed.BENCH_USER, "password": seed.BENCH_PASSWORD}
        login["csrf_token"] = csrf_token(client.get("/auth/login"))
        if client.post("/auth/login", data=login).status_code != 302:
            raise RuntimeError(f"{server.name}: the benchmark user cannot log in")
        body = urlencode(
            {
                "title": seed.TITLE.format(99),
                "body": seed.BODY.format(99),
                "csrf_token": csrf_token(client.get("/create")),
            }
        )
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        response = client.post("/create", content=body, headers=form)
        if response.status_code != 302:
            raise RuntimeError(f"{server.name}: POST /create gave {response.status_code}")
        return {
            "BENCH_POST_BODY": body,
            "BENCH_COOKIE": f"session={client.cookies['session']}",
            "BENCH_EXPECT_STATUS": "302",
            "BENCH_EXPECT_LOCATION": response.headers["location"],
        }


def csrf_token(response: httpx.Response) -> str:
    """Return the CSRF token of the form on a page."""
    match = TOKEN.search(response.text)
    if match is None:
        raise RuntimeError(f"no CSRF token on {response.url} ({response.status_code})")
    return match[1]
