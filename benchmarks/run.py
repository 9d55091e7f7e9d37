"""Side-by-side benchmark of flaskr-async against its references; prints medians, ratios, goals.

``.venv/bin/python -m benchmarks [--tree DIR] [--duration S] [--reps N]``. Every server
runs on 127.0.0.1 with one worker (the ``postgres`` phase: one and two); wrk drives it. Runs
are interleaved (A, B, A, B, ...), repeated, and a run with too much CPU steal is reported but
not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx

from benchmarks import live
from benchmarks import seed
from benchmarks.processes import tree_cpu_seconds
from tests.postgres_server import find_tool
from tests.postgres_server import private_postgres
from tests.postgres_server import with_database

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the project the harness belongs to: its default tree

SECRET_KEY = "benchmark-secret-key-that-is-long-enough-to-serve"
REPORT_LUA = HERE / "report.lua"
BACKENDS = ("sqlite", "postgresql")
ENDPOINTS = {"index": "/", "create": "/create"}
# The phases wrk drives; startup, costs and live need no wrk.
WRK_PHASES = {"hello", "index", "logins", "flood", "postgres"}
# The index's server table (goal 5): the references, the app as shipped, the other servers.
SERVER_TABLE = ("flaskr", "flask-reuse", "full", "full-asyncio", "uvicorn", "granian")
SERVER_NAMES = {
    "flaskr": "Flask + sqlite3, gunicorn sync, connection per request (Flaskr-style)",
    "flask-reuse": "Flask + sqlite3, gunicorn sync, reused connection",
    "full": "the app as make run serves it (hypercorn on uvloop, shipped hypercorn.toml)",
    "full-asyncio": "the app, hypercorn on asyncio's own loop (-k asyncio), shipped settings",
    "uvicorn": "the app, uvicorn (uvloop + httptools)",
    "granian": "the app, granian (ASGI)",
}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Server:
    """A server process started by the harness."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    startup: float = 0.0

    def worker_pid(self) -> int:
        """Return the pid of the one worker (hypercorn and gunicorn both serve from a child)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        workers = [
            int(child)
            for child in children
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
        ]
        if not workers:  # served in-process (the serve command, uvicorn)
            return pid
        if len(workers) != 1:
            raise RuntimeError(f"{self.name}: expected one worker, found {workers}")
        return workers[0]

    def peak_rss_mb(self) -> float:
        """Return the worker's peak resident memory (VmHWM) in MB."""
        for line in Path(f"/proc/{self.worker_pid()}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        """SIGTERM the master, then SIGKILL whatever is left of its process group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class Run:
    """One wrk run: throughput, latency, errors and the CPU steal while it ran."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    steal: float
    noisy: bool
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU time per request, by process


@dataclass
class Series:
    """The repeated runs of one measurement."""

    label: str
    runs: list[Run] = field(default_factory=list)

    def clean(self) -> list[Run]:
        """Return the runs that count (all of them if every run was noisy)."""
        clean = [run for run in self.runs if not run.noisy]
        return clean or self.runs

    def median(self, attribute: str) -> float:
        """Return the median of one attribute over the counted runs."""
        return float(statistics.median(getattr(run, attribute) for run in self.clean()))

    def median_cpu(self, name: str) -> float:
        """Return the median CPU time per request of one watched process, in us."""
        return float(statistics.median(run.cpu_us.get(name, 0.0) for run in self.clean()))


@dataclass
class Step:
    """One measurement of a plan: wrk against a server's path, with report.lua's settings."""

    label: str
    server: Server
    path: str
    connections: int
    env: Mapping[str, str] = field(default_factory=dict)
    watch: Mapping[str, int] = field(default_factory=dict)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_times() -> tuple[int, int, int]:
    """Return (steal, busy, total) jiffies of all CPUs from the first line of /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return fields[7], sum(fields) - idle - fields[7], sum(fields)


def children_cpu_seconds() -> float:
    """Return the CPU time of this process's waited-for children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def answers(port: int, path: str = "/hello") -> bool:
    """Tell whether the server on ``port`` answers ``path`` with a 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def start(name: str, command: Sequence[str], env: dict[str, str], cwd: Path, logs: Path) -> Server:
    """Spawn a server and poll /hello until it answers; record the time to the first 200."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    log = logs / f"{name}.log"
    began = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = began + 30
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log.read_text()}")
        if answers(port):
            server.startup = time.perf_counter() - began
            return server
        time.sleep(0.005)
    server.stop()
    raise TimeoutError(f"{name} did not answer within 30 s:\n{log.read_text()}")


def wrk(
    url: str,
    connections: int,
    seconds: float,
    max_steal: float,
    env: Mapping[str, str] | None = None,
    watch: Mapping[str, int] | None = None,
) -> Run:
    """Drive ``url`` with wrk (one thread) and return the run, with its CPU steal.

    ``env`` reaches report.lua (a POST body, a cookie, the expected status); ``watch`` names
    process trees whose CPU time per request is recorded, with wrk's own and the rest of the
    machine's (everything else that ran meanwhile).
    """
    watch = watch or {}
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in watch.items()}
    wrk_before = children_cpu_seconds()
    steal_before, busy_before, total_before = cpu_times()
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(REPORT_LUA),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    steal_after, busy_after, total_after = cpu_times()
    cpu_us = {name: tree_cpu_seconds(pid) - cpu_before[name] for name, pid in watch.items()}
    cpu_us["wrk"] = children_cpu_seconds() - wrk_before
    # Every CPU's busy time, less what the watched processes and wrk used: the rest.
    busy = (busy_after - busy_before) / os.sysconf("SC_CLK_TCK")
    cpu_us["rest"] = busy - sum(cpu_us.values())
    line = next(line for line in result.stdout.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    requests = max(1, data["requests"])
    steal = 100 * (steal_after - steal_before) / max(1, total_after - total_before)
    # With an expected status, every other response is an error (wrk counts only >= 400).
    status = "unexpected" if env and "BENCH_EXPECT_STATUS" in env else "status"
    errors = sum(data[key] for key in ("connect", "read", "write", status, "timeout"))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        steal=steal,
        noisy=steal > max_steal,
        cpu_us={name: cpu * 1e6 / requests for name, cpu in cpu_us.items()},
    )


class Bench:
    """The whole benchmark: servers, databases, runs and the printed report."""

    def __init__(self, tree: Path, workdir: Path, args: argparse.Namespace) -> None:
        self.tree = tree
        self.workdir = workdir
        self.args = args
        self.python = sys.executable
        self.servers: list[Server] = []
        self.series: dict[str, Series] = {}
        self.rss: dict[str, float] = {}
        self.startups: dict[str, list[float]] = {}
        self.logins: list[str] = []
        self.floods: list[str] = []
        self.db: dict[str, Path] = {}
        self.password_hash = ""
        self.postgres_labels: list[str] = []
        self.breakdown = ""
        self.costs = ""

    def env(self, database: Path | str | None = None, **settings: str) -> dict[str, str]:
        """Return a server environment: the tree on the path, FLASKR_* settings applied."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
        env.update(PYTHONPATH=str(self.tree), BENCH_TREE=str(self.tree))
        env.update(FLASKR_SECRET_KEY=SECRET_KEY, FLASKR_SESSION_COOKIE_SECURE="false")
        if database is not None:
            env["FLASKR_DATABASE"] = str(database)
        env.update({f"FLASKR_{key}": value for key, value in settings.items()})
        return env

    def hypercorn(self, target: str, workers: int = 1) -> list[str]:
        """Return the command serving an ASGI target with hypercorn, one worker by default."""
        return [self.python, "-m", "hypercorn", *self.bind(), "-w", str(workers), target]

    def gunicorn(self) -> list[str]:
        """Return the command serving the Flask reference with gunicorn, one sync worker."""
        return [
            self.python,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-k",
            "sync",
            "-b",
            "127.0.0.1:{port}",
            "--chdir",
            str(HERE),
            "reference_flask:app",
        ]

    def shipped(self) -> list[str]:
        """Return make run's command: the serve command with the shipped hypercorn.toml."""
        return [self.python, "-m", "flaskr_async", "serve", *self.shipped_config(), *self.bind()]

    def shipped_config(self) -> list[str]:
        """Return the option naming the served tree's hypercorn.toml (serve and hypercorn)."""
        return ["--config", str(self.tree / "hypercorn.toml")]

    def bind(self) -> list[str]:
        """Return the serve command's (and hypercorn's) option binding the server's port."""
        return ["--bind", "127.0.0.1:{port}"]

    def hypercorn_shipped(
        self, target: str = "asgi:app", worker_class: str = "uvloop"
    ) -> list[str]:
        """Return plain hypercorn with the shipped settings, on the given event loop."""
        return [
            *(self.python, "-m", "hypercorn", *self.shipped_config(), "-k", worker_class),
            *self.bind(),
            target,
        ]

    def uvicorn(self) -> list[str]:
        """Return uvicorn (uvloop, httptools), one worker, no access log (as gunicorn's default)."""
        return [
            self.python,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "asgi:app",
        ]

    def granian(self) -> list[str]:
        """Return granian's ASGI interface, one worker (it logs no access by default)."""
        return [
            self.python,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--no-ws",
            "asgi:app",
        ]

    def serve(self, name: str, command: Sequence[str], env: dict[str, str]) -> Server:
        """Start a server for the rest of the benchmark."""
        server = start(name, command, env, self.tree, self.workdir)
        self.servers.append(server)
        return server

    def warm(self, server: Server, path: str, env: Mapping[str, str] | None = None) -> None:
        """Warm a server up on ``path`` (imports, caches, the pool) before measuring."""
        if env is None and not answers(int(server.url.rsplit(":", 1)[1]), path):
            raise RuntimeError(f"{server.name} does not answer {path}:\n{server.log.read_text()}")
        run = self.measure(None, server, path, 64, self.args.warmup, env)
        if env is not None and run.errors:
            raise RuntimeError(f"{server.name}: {run.errors} errors on {path}")

    def measure(
        self,
        label: str | None,
        server: Server,
        path: str,
        connections: int,
        seconds: float,
        env: Mapping[str, str] | None = None,
        watch: Mapping[str, int] | None = None,
    ) -> Run:
        """Run wrk once and file the run under ``label``."""
        run = wrk(server.url + path, connections, seconds, self.args.max_steal, env, watch)
        if label is not None:
            self.series.setdefault(label, Series(label)).runs.append(run)
            flag = " NOISY" if run.noisy else ""
            print(
                f"  {label:<34} {run.rps:9.0f} req/s  p50 {run.p50_ms:7.2f} ms  p99"
                f" {run.p99_ms:7.2f} ms  errors {run.errors:<5} steal {run.steal:4.1f}%{flag}",
                flush=True,
            )
        return run

    def interleave(
        self, plan: Sequence[Step | tuple[str, Server, str, int]], seconds: float
    ) -> None:
        """Run every measurement of ``plan`` once per repetition, in order, repeatedly."""
        steps = [item if isinstance(item, Step) else Step(*item) for item in plan]
        for rep in range(self.args.reps):
            print(f" repetition {rep + 1}/{self.args.reps}", flush=True)
            for step in steps:
                for _ in range(1 + self.args.retries):
                    run = self.measure(
                        step.label,
                        step.server,
                        step.path,
                        step.connections,
                        seconds,
                        step.env,
                        step.watch,
                    )
                    if not run.noisy:
                        break

    def seed_databases(self) -> dict[str, Path]:
        """Make the databases: 100 posts, 100,000 posts, and a copy of 100 for the logins."""
        began = time.perf_counter()
        template = self.workdir / "empty.sqlite"
        seed.init_template(self.tree, template)
        password_hash = self.password_hash = seed.bench_password_hash(self.tree)
        databases = {
            "small": seed.seed(template, self.workdir / "posts100.sqlite", 100, password_hash),
            "large": seed.seed(template, self.workdir / "posts100k.sqlite", 100_000, password_hash),
            "logins": seed.seed(template, self.workdir / "logins.sqlite", 100, password_hash),
            "flask": seed.seed(template, self.workdir / "flask100.sqlite", 100, password_hash),
        }
        print(f"Seeded databases in {time.perf_counter() - began:.2f} s", flush=True)
        return databases

    def hello_phase(self) -> None:
        """Goal 1: the full app's /hello against plain Quart and a bare ASGI callable."""
        print("\n[1] /hello: bare ASGI, plain Quart, full app (hypercorn, 1 worker)", flush=True)
        servers = {
            "bare": self.serve(
                "bare", self.hypercorn(str(HERE / "bare_asgi.py") + ":app"), self.env()
            ),
            "quart": self.serve(
                "quart", self.hypercorn(str(HERE / "plain_quart.py") + ":app"), self.env()
            ),
            "full": self.serve(
                "full-hello", self.hypercorn("asgi:app"), self.env(self.db["small"])
            ),
        }
        for server in servers.values():
            self.warm(server, "/hello")
        plan = [
            (f"hello {name} c{c}", server, "/hello", c)
            for c in (64, 1)
            for name, server in servers.items()
        ]
        self.interleave(plan, self.args.duration)
        for name, server in servers.items():
            self.rss[f"{name} /hello"] = server.peak_rss_mb()

    def index_phase(self) -> None:
        """Goals 1, 2, 4, 5: the 50-post index on every server against both Flask references."""
        print(
            "\n[1,2,4,5] index, 50 posts a page: Flask + sqlite3 on gunicorn vs the app on each"
            " server (CPU: the server's processes, us per request)",
            flush=True,
        )
        page = self.env(self.db["small"], POSTS_PER_PAGE="50")
        servers = {
            "flaskr": self.serve(
                "flask-flaskr", self.gunicorn(), self.env(self.db["flask"], POSTS_PER_PAGE="50")
            ),
            "flask-reuse": self.serve(
                "flask-reuse",
                self.gunicorn(),
                {**self.env(self.db["flask"], POSTS_PER_PAGE="50"), "BENCH_REUSE_CONNECTION": "1"},
            ),
            # As make run serves it: the serve command, the shipped hypercorn.toml, one worker.
            "full": self.serve("full-index", self.shipped(), page),
            "full-asyncio": self.serve(
                "full-index-asyncio", self.hypercorn_shipped(worker_class="asyncio"), page
            ),
            "uvicorn": self.serve("full-index-uvicorn", self.uvicorn(), page),
            "granian": self.serve("full-index-granian", self.granian(), page),
            # SQLite's default pool is one connection: what a second thread would cost.
            "full-pool2": self.serve(
                "full-index-pool2", self.shipped(), {**page, "FLASKR_DATABASE_POOL_SIZE": "2"}
            ),
            "full-on-loop": self.serve(
                "full-index-reads-on-the-loop",
                self.hypercorn_shipped(str(HERE / "reads_on_the_loop.py") + ":app"),
                page,
            ),
            "full-100k": self.serve(
                "full-index-100k", self.shipped(), self.env(self.db["large"], POSTS_PER_PAGE="50")
            ),
        }
        for server in servers.values():
            self.warm(server, "/")
        deep = "/?before=50000"
        self.warm(servers["full-100k"], deep)
        plan = [
            Step(
                f"index {name} c64",
                servers[name],
                "/",
                64,
                watch={"server": servers[name].process.pid},
            )
            for name in SERVER_TABLE
        ]
        plan += [
            Step(
                f"index {name} c1",
                servers[name],
                "/",
                1,
                watch={"server": servers[name].process.pid},
            )
            for name in ("flaskr", "flask-reuse", "full")
        ]
        plan += [
            Step(
                "index full-pool2 c64",
                servers["full-pool2"],
                "/",
                64,
                watch={"server": servers["full-pool2"].process.pid},
            ),
            Step(
                "index full-on-loop c64",
                servers["full-on-loop"],
                "/",
                64,
                watch={"server": servers["full-on-loop"].process.pid},
            ),
            Step("index full-100k c1", servers["full-100k"], "/", 1),
            Step("index full-100k deep c1", servers["full-100k"], deep, 1),
        ]
        self.interleave(plan, self.args.duration)
        for name, server in servers.items():
            self.rss[f"{name} index"] = server.peak_rss_mb()

    def hello_beside(
        self, server: Server, labels: tuple[str, str], load: Sequence[str], outputs: list[str]
    ) -> None:
        """Measure /hello at 1 connection quiet, then beside a load script; keep its line."""
        quiet, loaded = labels
        self.warm(server, "/hello")
        for rep in range(self.args.reps):
            print(f" repetition {rep + 1}/{self.args.reps}", flush=True)
            self.measure(quiet, server, "/hello", 1, self.args.duration)
            command = [self.python, "-m", *load, str(self.args.duration + 2)]
            clients = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            time.sleep(1)  # let the clients get going (the logins reach the hashing)
            self.measure(loaded, server, "/hello", 1, self.args.duration)
            out, _ = clients.communicate(timeout=60)
            outputs.append(out.strip())
            print(f"  {out.strip()}", flush=True)

    def login_phase(self) -> None:
        """Goal 3: /hello p99 at 1 connection while 2 clients hammer POST /auth/login."""
        print("\n[3] /hello c1 while 2 clients log in (real CSRF tokens), full app", flush=True)
        server = self.serve("full-logins", self.hypercorn("asgi:app"), self.env(self.db["logins"]))
        storm = ["benchmarks.login_storm", server.url, seed.BENCH_USER, seed.BENCH_PASSWORD]
        labels = ("hello full c1 (quiet)", "hello full c1 under logins")
        self.hello_beside(server, labels, [*storm, "2"], self.logins)
        self.rss["full under logins"] = server.peak_rss_mb()

    def flood_phase(self) -> None:
        """/hello p50/p99 at 1 connection, quiet and while 4 clients post 100,000-field forms."""
        print("\n[3b] /hello c1 while 4 clients post 100,000-field login bodies", flush=True)
        server = self.serve("full-flood", self.hypercorn("asgi:app"), self.env(self.db["logins"]))
        labels = ("hello full c1 (quiet, flood)", "hello full c1 under field flood")
        self.hello_beside(server, labels, ["benchmarks.field_flood", server.url, "4"], self.floods)

    def startup_phase(self) -> None:
        """Goal 4: spawn to first 200 on /hello, the full app and plain Quart, interleaved."""
        print("\n[4] start-up to the first 200 (spawn, poll /hello every 5 ms)", flush=True)
        serve = [self.python, "-m", "flaskr_async", "serve", "--bind", "127.0.0.1:{port}"]
        commands = {
            "full": (self.hypercorn("asgi:app"), self.env(self.db["small"])),
            "quart": (self.hypercorn(str(HERE / "plain_quart.py") + ":app"), self.env()),
            "bare": (self.hypercorn(str(HERE / "bare_asgi.py") + ":app"), self.env()),
            # The project's own entry point (make run): one worker served in-process.
            "serve": (serve, self.env(self.db["small"])),
        }
        for _ in range(max(5, self.args.reps)):
            for name, (command, env) in commands.items():
                server = start(f"startup-{name}", command, env, self.tree, self.workdir)
                server.stop()
                self.startups.setdefault(name, []).append(server.startup)
                print(f"  start-up {name:<6} {server.startup:.3f} s", flush=True)
        print("  (full, quart, bare: hypercorn -w 1, which spawns its worker; serve: in-process)")

    def postgres_phase(self) -> None:
        """PostgreSQL against SQLite: index and create at c64, 1 and 2 workers; the breakdown."""
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
                    self.tree, with_database(admin, f"bench_{name}"), 100, self.password_hash
                )
                sqlite = self.workdir / f"compare-{name}.sqlite"
                template = self.workdir / "empty.sqlite"
                seed.seed(template, sqlite, 100, self.password_hash)
                databases["sqlite", name] = str(sqlite)
            print(f"  seeded 3 + 3 databases in {time.perf_counter() - began:.2f} s", flush=True)
            self.breakdown = self.where_time_goes(
                databases["sqlite", "profile"], databases["postgresql", "profile"]
            )
            print(self.breakdown, flush=True)
            postmaster = postmaster_pid(admin)
            servers: dict[tuple[str, int], Server] = {}
            try:
                for workers in (1, 2):
                    for backend in BACKENDS:
                        servers[backend, workers] = start(
                            f"compare-{backend}-w{workers}",
                            self.hypercorn("asgi:app", workers),
                            self.env(databases[backend, f"w{workers}"], POSTS_PER_PAGE="50"),
                            self.tree,
                            self.workdir,
                        )
                posts = {key: create_request(server) for key, server in servers.items()}
                for key, server in servers.items():
                    self.warm(server, ENDPOINTS["index"])
                    self.warm(server, ENDPOINTS["create"], posts[key])
                plan = [
                    Step(
                        f"{endpoint} {backend} w{workers} c64",
                        servers[backend, workers],
                        path,
                        64,
                        posts[backend, workers] if endpoint == "create" else {},
                        {"app": servers[backend, workers].process.pid, "postgres": postmaster},
                    )
                    for workers in (1, 2)
                    for endpoint, path in ENDPOINTS.items()
                    for backend in BACKENDS
                ]
                self.postgres_labels = [step.label for step in plan]
                self.interleave(plan, self.args.pg_duration)
            finally:
                for server in servers.values():
                    server.stop()

    def where_time_goes(self, sqlite: str, postgresql: str) -> str:
        """Run profile_backends.py on fresh databases of both backends; return what it printed."""
        result = subprocess.run(
            [
                *(self.python, "-m", "benchmarks.profile_backends", "--tree", str(self.tree)),
                *("--sqlite", sqlite, "--postgresql", postgresql),
            ],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"profile_backends.py failed:\n{result.stderr}")
        return result.stdout.rstrip()

    def postgres_report(self) -> None:
        """Print the postgres phase: medians with CPU per request, ratios, scaling, breakdown."""
        s = self.series
        print(
            f"\nPostgreSQL vs SQLite, c64: medians of {self.args.reps} x"
            f" {self.args.pg_duration:g} s (a run with steal > {self.args.max_steal:g}% is not"
            " counted). CPU us per request:"
            "\napp = hypercorn master and workers, pg = the PostgreSQL server, wrk = the load"
            " generator, rest = every other process of the machine (other tenants, kernel threads)"
        )
        print(
            f"{'measurement':<26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
            f" {'steal % per run':>17} {'counted':>7} {'app':>6} {'pg':>5} {'wrk':>5} {'rest':>5}"
        )
        for label in self.postgres_labels:
            series = s[label]
            steals = " ".join(f"{run.steal:.1f}{'*' if run.noisy else ''}" for run in series.runs)
            print(
                f"{label:<26} {series.median('rps'):8.0f} {series.median('p50_ms'):8.2f}"
                f" {series.median('p99_ms'):8.2f} {sum(r.errors for r in series.runs):7d}"
                f" {steals:>17} {len(series.clean()):>3}/{len(series.runs):<3}"
                f" {series.median_cpu('app'):6.0f} {series.median_cpu('postgres'):5.0f}"
                f" {series.median_cpu('wrk'):5.0f} {series.median_cpu('rest'):5.0f}"
            )

        def ratio(numerator: str, denominator: str, attribute: str) -> str:
            return f"{s[numerator].median(attribute) / s[denominator].median(attribute):.2f}x"

        print("\npostgresql / sqlite (req/s: above 1 favours postgresql; p50, p99: below 1)")
        print(f"{'':<30} {'req/s':>6} {'p50':>6} {'p99':>6}")
        for workers in (1, 2):
            for endpoint in ENDPOINTS:
                pg, lite = (f"{endpoint} {backend} w{workers} c64" for backend in BACKENDS[::-1])
                print(
                    f"  {endpoint:<6} w{workers}                  {ratio(pg, lite, 'rps'):>6}"
                    f" {ratio(pg, lite, 'p50_ms'):>6} {ratio(pg, lite, 'p99_ms'):>6}"
                )
        print("2 workers / 1 worker, req/s")
        for backend in BACKENDS:
            for endpoint in ENDPOINTS:
                two, one = (f"{endpoint} {backend} w{workers} c64" for workers in (2, 1))
                print(f"  {endpoint:<6} {backend:<22} {ratio(two, one, 'rps'):>6}")
        print("\nWhere the time goes:")
        print(self.breakdown)

    def server_table(self) -> None:
        """Print goal 5's table: the index on each server against both Flask references."""
        s = self.series
        flaskr, reuse = (s[f"index {name} c64"].median("rps") for name in SERVER_TABLE[:2])
        print("\nIndex, 50 posts, 64 connections, one worker each (goal 5):")
        print(
            f"  {'server':<72} {'req/s':>7} {'p99 ms':>7} {'CPU us/req':>10}"
            f" {'/ Flaskr':>9} {'/ reuse':>8}"
        )
        for name in SERVER_TABLE:
            series = s[f"index {name} c64"]
            value = series.median("rps")
            print(
                f"  {SERVER_NAMES[name]:<72} {value:7.0f} {series.median('p99_ms'):7.1f}"
                f" {series.median_cpu('server'):10.0f} {value / flaskr:8.2f}x {value / reuse:7.2f}x"
            )
        for name in ("full-pool2", "full-on-loop"):
            series = s[f"index {name} c64"]
            print(
                f"  {name + ' (shipped settings)':<72} {series.median('rps'):7.0f}"
                f" {series.median('p99_ms'):7.1f} {series.median_cpu('server'):10.0f}"
                f" {series.median('rps') / flaskr:8.2f}x {series.median('rps') / reuse:7.2f}x"
            )

    def costs_phase(self) -> None:
        """What each request costs the loop (thread round trips, rows, leases, awaits)."""
        print("\n[costs] counted in-process by profile_index.py --costs", flush=True)
        result = subprocess.run(
            [self.python, "-m", "benchmarks.profile_index", "--costs", "--tree", str(self.tree)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=self.env(),
        )
        self.costs = result.stdout[result.stdout.index("Per request") :].rstrip()
        print(self.costs, flush=True)

    def report(self) -> None:
        """Print every series' medians, the goals with their ratios, and the runs' steal."""
        s = self.series
        print("\n" + "=" * 100)
        others = [series for series in s.values() if series.label not in self.postgres_labels]
        if others:
            print(
                f"Medians over counted runs ({self.args.reps} repetitions x"
                f" {self.args.duration:g} s, wrk -t1; a run with steal > {self.args.max_steal:g}%"
                " is not counted)"
            )
            print(
                f"{'measurement':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
                f" {'steal % per run':>22} {'counted':>8}"
            )
        for series in others:
            steals = " ".join(f"{run.steal:.1f}{'*' if run.noisy else ''}" for run in series.runs)
            print(
                f"{series.label:<34} {series.median('rps'):9.0f} {series.median('p50_ms'):8.2f}"
                f" {series.median('p99_ms'):8.2f} {sum(r.errors for r in series.runs):7d}"
                f" {steals:>22} {len(series.clean()):>4}/{len(series.runs)}"
            )
        if self.rss:
            print("\nWorker peak RSS (VmHWM):")
        for name, megabytes in self.rss.items():
            print(f"  {name:<24} {megabytes:7.1f} MB")
        if self.startups:
            print("\nStart-up to first 200 (s): ")
        for name, times in self.startups.items():
            print(
                f"  {name:<6} median {statistics.median(times):.3f}"
                f"  runs {' '.join(f'{t:.3f}' for t in times)}"
            )
        if self.logins:
            print("\nLogin storm per repetition: " + "; ".join(self.logins))
        if self.floods:
            print("\nField flood per repetition: " + "; ".join(self.floods))
        if self.postgres_labels:
            self.postgres_report()
        if self.costs:
            print("\n" + self.costs)

        def rps(label: str) -> float:
            return s[label].median("rps")

        goals: list[tuple[str, str, bool]] = []
        if "hello full c64" in s:
            ratio = rps("hello full c64") / rps("hello quart c64")
            goals.append(
                (
                    "3 /hello full app / plain Quart, c64",
                    f"{ratio:.2f}x (>= 0.95x); plain Quart / bare ASGI"
                    f" {rps('hello quart c64') / rps('hello bare c64'):.2f}x",
                    ratio >= 0.95,
                )
            )
        if "index full c64" in s:
            c64 = rps("index full c64") / rps("index flaskr c64")
            c1 = rps("index full c1") / rps("index flaskr c1")
            goals.append(
                (
                    "1 index, as shipped / Flaskr-style, c64 and c1",
                    f"{c64:.2f}x and {c1:.2f}x (>= 1.0x); vs reused connection"
                    f" {rps('index full c64') / rps('index flask-reuse c64'):.2f}x and"
                    f" {rps('index full c1') / rps('index flask-reuse c1'):.2f}x",
                    c64 >= 1.0 and c1 >= 1.0,
                )
            )
            fastest = max(SERVER_TABLE[2:], key=lambda name: rps(f"index {name} c64"))
            ratio = rps(f"index {fastest} c64") / rps("index flask-reuse c64")
            goals.append(
                (
                    "2 index, fastest server / reused connection c64",
                    f"{ratio:.2f}x (>= 1.2x) on {fastest}",
                    ratio >= 1.2,
                )
            )
            self.server_table()
        if "hello full c1 under logins" in s:
            p99 = s["hello full c1 under logins"].median("p99_ms")
            rss = self.rss["full under logins"]
            goals.append(
                (
                    "4 /hello p99 c1 under logins; peak RSS",
                    f"{p99:.2f} ms (< 15 ms); {rss:.0f} MB (< 150 MB)",
                    p99 < 15 and rss < 150,
                )
            )
        if "hello full c1 under field flood" in s:
            flooded = s["hello full c1 under field flood"]
            quiet = s["hello full c1 (quiet, flood)"]
            goals.append(
                (
                    "4b /hello c1 under a 100,000-field flood",
                    f"p50 {flooded.median('p50_ms'):.2f} ms vs {quiet.median('p50_ms'):.2f} ms"
                    f" quiet; p99 {flooded.median('p99_ms'):.2f} ms vs"
                    f" {quiet.median('p99_ms'):.2f} ms",
                    flooded.median("p99_ms") < 15,
                )
            )
        if "full" in self.startups:
            median = statistics.median(self.startups["full"])
            value = f"{median:.3f} s (< 0.6 s) with hypercorn asgi:app"
            if "serve" in self.startups:
                value += (
                    f"; {statistics.median(self.startups['serve']):.3f} s with make run's serve"
                )
            goals.append(("4c start-up to first 200", value, median < 0.6))
        if "index full-100k c1" in s:
            ratio = s["index full-100k c1"].median("p50_ms") / s["index full c1"].median("p50_ms")
            goals.append(
                (
                    "4d index p50 c1, 100,000 / 100 posts",
                    f"{ratio:.2f}x (<= 1.5x)",
                    ratio <= 1.5,
                )
            )
        if goals:
            print("\nGoals:")
        for name, value, met in goals:
            print(f"  {'MET ' if met else 'MISS'}  {name:<44} {value}")
        noisy = [series.label for series in s.values() if any(run.noisy for run in series.runs)]
        if noisy:
            print(f"\nNoisy runs (not counted) in: {', '.join(noisy)}")
        print("=" * 100, flush=True)

    def run(self) -> None:
        """Seed, run every phase, stop every server, print the report."""
        self.db = self.seed_databases()
        try:
            phases = self.args.phases
            if "hello" in phases:
                self.hello_phase()
            if "index" in phases:
                self.index_phase()
            if "logins" in phases:
                self.login_phase()
            if "flood" in phases:
                self.flood_phase()
            if "postgres" in phases:
                self.postgres_phase()
            if "costs" in phases:
                self.costs_phase()
        finally:
            for server in self.servers:
                server.stop()
        if "startup" in self.args.phases:
            self.startup_phase()
        self.report()


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


def check_tools(phases: Sequence[str]) -> None:
    """Fail early when wrk or PostgreSQL's initdb is missing for a phase that needs it."""
    if WRK_PHASES.intersection(phases) and shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    if {"postgres", "live"}.intersection(phases) and find_tool("initdb") is None:
        sys.exit(
            "The postgres and live phases need PostgreSQL's initdb (make system-deps installs"
            " it); or leave them out: --phases hello,index,logins,startup"
        )


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    """Yield a scratch directory for databases and server logs."""
    path = Path(tempfile.mkdtemp(prefix="flaskr-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"Kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT, help="project tree to serve")
    parser.add_argument("--duration", type=float, default=5, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per server")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (at least 3)")
    parser.add_argument(
        "--max-steal", type=float, default=5, help="steal %% above which a run is noisy"
    )
    parser.add_argument(
        "--phases",
        default="hello,index,logins,flood,startup,postgres,costs,live",
        type=lambda value: value.split(","),
        help="comma-separated subset of hello,index,logins,flood,startup,postgres,costs,live",
    )
    parser.add_argument(
        "--pg-duration", type=float, default=4, help="seconds per run of the postgres phase"
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="extra attempts at a run found noisy"
    )
    parser.add_argument("--keep", action="store_true", help="keep databases and server logs")
    args = parser.parse_args(argv)
    check_tools(args.phases)
    tree = args.tree.resolve()
    print(f"Serving the tree {tree}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    began = time.perf_counter()
    with workdir(args.keep) as path:
        Bench(tree, path, args).run()
        if "live" in args.phases:  # benchmarks.live: its own servers and report lines
            live.run_phase(tree, path)
    print(f"Total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
