"""Side-by-side benchmark of flaskr-async against its references; prints medians, ratios, goals.

``.venv/bin/python benchmarks/run.py [--tree DIR] [--duration S] [--reps N]``. Every server
runs on 127.0.0.1 with one worker; wrk drives it. Runs are interleaved (A, B, A, B, ...),
repeated, and a run with too much CPU steal is reported but not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import seed  # noqa: E402

SECRET_KEY = "benchmark-secret-key-that-is-long-enough-to-serve"
REPORT_LUA = HERE / "report.lua"


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


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_times() -> tuple[int, int]:
    """Return (steal, total) jiffies from the first line of /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[7], sum(fields)


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


def wrk(url: str, connections: int, seconds: float, max_steal: float) -> Run:
    """Drive ``url`` with wrk (one thread) and return the run, with its CPU steal."""
    steal_before, total_before = cpu_times()
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
    )
    steal_after, total_after = cpu_times()
    line = next(line for line in result.stdout.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    steal = 100 * (steal_after - steal_before) / max(1, total_after - total_before)
    errors = sum(data[key] for key in ("connect", "read", "write", "status", "timeout"))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        steal=steal,
        noisy=steal > max_steal,
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
        self.db: dict[str, Path] = {}

    def env(self, database: Path | None = None, **settings: str) -> dict[str, str]:
        """Return a server environment: the tree on the path, FLASKR_* settings applied."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
        env.update(PYTHONPATH=str(self.tree), BENCH_TREE=str(self.tree))
        env.update(FLASKR_SECRET_KEY=SECRET_KEY, FLASKR_SESSION_COOKIE_SECURE="false")
        if database is not None:
            env["FLASKR_DATABASE"] = str(database)
        env.update({f"FLASKR_{key}": value for key, value in settings.items()})
        return env

    def hypercorn(self, target: str) -> list[str]:
        """Return the command serving an ASGI target with hypercorn, one worker."""
        return [self.python, "-m", "hypercorn", "--bind", "127.0.0.1:{port}", "-w", "1", target]

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

    def serve(self, name: str, command: Sequence[str], env: dict[str, str]) -> Server:
        """Start a server for the rest of the benchmark."""
        server = start(name, command, env, self.tree, self.workdir)
        self.servers.append(server)
        return server

    def warm(self, server: Server, path: str) -> None:
        """Warm a server up on ``path`` (imports, caches, the pool) before measuring."""
        if not answers(int(server.url.rsplit(":", 1)[1]), path):
            raise RuntimeError(f"{server.name} does not answer {path}:\n{server.log.read_text()}")
        self.measure(None, server, path, 64, self.args.warmup)

    def measure(
        self, label: str | None, server: Server, path: str, connections: int, seconds: float
    ) -> Run:
        """Run wrk once and file the run under ``label``."""
        run = wrk(server.url + path, connections, seconds, self.args.max_steal)
        if label is not None:
            self.series.setdefault(label, Series(label)).runs.append(run)
            flag = " NOISY" if run.noisy else ""
            print(
                f"  {label:<34} {run.rps:9.0f} req/s  p50 {run.p50_ms:7.2f} ms  p99"
                f" {run.p99_ms:7.2f} ms  errors {run.errors:<5} steal {run.steal:4.1f}%{flag}",
                flush=True,
            )
        return run

    def interleave(self, plan: Sequence[tuple[str, Server, str, int]], seconds: float) -> None:
        """Run every measurement of ``plan`` once per repetition, in order, repeatedly."""
        for rep in range(self.args.reps):
            print(f" repetition {rep + 1}/{self.args.reps}", flush=True)
            for label, server, path, connections in plan:
                run = self.measure(label, server, path, connections, seconds)
                for _ in range(self.args.retries):
                    if not run.noisy:
                        break
                    run = self.measure(label, server, path, connections, seconds)

    def seed_databases(self) -> dict[str, Path]:
        """Make the databases: 100 posts, 100,000 posts, and a copy of 100 for the logins."""
        began = time.perf_counter()
        template = self.workdir / "empty.sqlite"
        seed.init_template(self.tree, template)
        password_hash = seed.bench_password_hash(self.tree)
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
        """Goals 2 and 5: the 50-post index against Flask + gunicorn; 100 vs 100,000 posts."""
        print("\n[2,5] index, 50 posts a page: Flask + sqlite3 on gunicorn vs the app", flush=True)
        page = {"POSTS_PER_PAGE": "50"}
        servers = {
            "flaskr": self.serve(
                "flask-flaskr", self.gunicorn(), self.env(self.db["flask"], **page)
            ),
            "flask-reuse": self.serve(
                "flask-reuse",
                self.gunicorn(),
                {**self.env(self.db["flask"], **page), "BENCH_REUSE_CONNECTION": "1"},
            ),
            "full": self.serve(
                "full-index", self.hypercorn("asgi:app"), self.env(self.db["small"], **page)
            ),
            "full-100k": self.serve(
                "full-index-100k", self.hypercorn("asgi:app"), self.env(self.db["large"], **page)
            ),
        }
        for server in servers.values():
            self.warm(server, "/")
        deep = "/?before=50000"
        self.warm(servers["full-100k"], deep)
        plan = [
            (f"index {name} c{c}", servers[name], "/", c)
            for c in (64, 1)
            for name in ("flaskr", "flask-reuse", "full")
        ]
        plan += [
            ("index full-100k c1", servers["full-100k"], "/", 1),
            ("index full-100k deep c1", servers["full-100k"], deep, 1),
        ]
        self.interleave(plan, self.args.duration)
        for name, server in servers.items():
            self.rss[f"{name} index"] = server.peak_rss_mb()

    def login_phase(self) -> None:
        """Goal 3: /hello p99 at 1 connection while 2 clients hammer POST /auth/login."""
        print("\n[3] /hello c1 while 2 clients log in (real CSRF tokens), full app", flush=True)
        server = self.serve("full-logins", self.hypercorn("asgi:app"), self.env(self.db["logins"]))
        self.warm(server, "/hello")
        for rep in range(self.args.reps):
            print(f" repetition {rep + 1}/{self.args.reps}", flush=True)
            self.measure("hello full c1 (quiet)", server, "/hello", 1, self.args.duration)
            storm = subprocess.Popen(
                [
                    self.python,
                    str(HERE / "login_storm.py"),
                    server.url,
                    seed.BENCH_USER,
                    seed.BENCH_PASSWORD,
                    "2",
                    str(self.args.duration + 2),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)  # let both clients reach the hashing
            self.measure("hello full c1 under logins", server, "/hello", 1, self.args.duration)
            out, _ = storm.communicate(timeout=60)
            self.logins.append(out.strip())
            print(f"  {out.strip()}", flush=True)
        self.rss["full under logins"] = server.peak_rss_mb()

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

    def report(self) -> None:
        """Print every series' medians, the goals with their ratios, and the runs' steal."""
        s = self.series
        print("\n" + "=" * 100)
        print(
            f"Medians over counted runs ({self.args.reps} repetitions x {self.args.duration:g} s,"
            f" wrk -t1; a run with steal > {self.args.max_steal:g}% is not counted)"
        )
        print(
            f"{'measurement':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
            f" {'steal % per run':>22} {'counted':>8}"
        )
        for series in s.values():
            steals = " ".join(f"{run.steal:.1f}{'*' if run.noisy else ''}" for run in series.runs)
            print(
                f"{series.label:<34} {series.median('rps'):9.0f} {series.median('p50_ms'):8.2f}"
                f" {series.median('p99_ms'):8.2f} {sum(r.errors for r in series.runs):7d}"
                f" {steals:>22} {len(series.clean()):>4}/{len(series.runs)}"
            )
        print("\nWorker peak RSS (VmHWM):")
        for name, megabytes in self.rss.items():
            print(f"  {name:<24} {megabytes:7.1f} MB")
        print("\nStart-up to first 200 (s): ")
        for name, times in self.startups.items():
            print(
                f"  {name:<6} median {statistics.median(times):.3f}"
                f"  runs {' '.join(f'{t:.3f}' for t in times)}"
            )
        if self.logins:
            print("\nLogin storm per repetition: " + "; ".join(self.logins))

        def rps(label: str) -> float:
            return s[label].median("rps")

        goals: list[tuple[str, str, bool]] = []
        if "hello full c64" in s:
            ratio = rps("hello full c64") / rps("hello quart c64")
            goals.append(
                (
                    "1 /hello full app / plain Quart, c64",
                    f"{ratio:.2f}x (>= 0.95x); plain Quart / bare ASGI"
                    f" {rps('hello quart c64') / rps('hello bare c64'):.2f}x",
                    ratio >= 0.95,
                )
            )
        if "index full c64" in s:
            ratio = rps("index full c64") / rps("index flaskr c64")
            strict = rps("index full c64") / rps("index flask-reuse c64")
            goals.append(
                (
                    "2 index 50 posts, app / Flask+gunicorn c64",
                    f"{ratio:.2f}x vs Flaskr-style (>= 1.0x); {strict:.2f}x vs reused connection",
                    ratio >= 1.0,
                )
            )
        if "hello full c1 under logins" in s:
            p99 = s["hello full c1 under logins"].median("p99_ms")
            rss = self.rss["full under logins"]
            goals.append(
                (
                    "3 /hello p99 c1 under logins; peak RSS",
                    f"{p99:.2f} ms (< 15 ms); {rss:.0f} MB (< 150 MB)",
                    p99 < 15 and rss < 150,
                )
            )
        if "full" in self.startups:
            median = statistics.median(self.startups["full"])
            value = f"{median:.3f} s (< 0.6 s) with hypercorn asgi:app"
            if "serve" in self.startups:
                value += (
                    f"; {statistics.median(self.startups['serve']):.3f} s with make run's serve"
                )
            goals.append(("4 start-up to first 200", value, median < 0.6))
        if "index full-100k c1" in s:
            ratio = s["index full-100k c1"].median("p50_ms") / s["index full c1"].median("p50_ms")
            goals.append(
                (
                    "5 index p50 c1, 100,000 / 100 posts",
                    f"{ratio:.2f}x (<= 1.5x)",
                    ratio <= 1.5,
                )
            )
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
        finally:
            for server in self.servers:
                server.stop()
        if "startup" in self.args.phases:
            self.startup_phase()
        self.report()


def check_tools() -> None:
    """Fail early when wrk is missing."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")


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
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="project tree to serve")
    parser.add_argument("--duration", type=float, default=5, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per server")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (at least 3)")
    parser.add_argument(
        "--max-steal", type=float, default=5, help="steal %% above which a run is noisy"
    )
    parser.add_argument(
        "--phases",
        default="hello,index,logins,startup",
        type=lambda value: value.split(","),
        help="comma-separated subset of hello,index,logins,startup",
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="extra attempts at a run found noisy"
    )
    parser.add_argument("--keep", action="store_true", help="keep databases and server logs")
    args = parser.parse_args(argv)
    check_tools()
    tree = args.tree.resolve()
    print(f"Serving the tree {tree}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    began = time.perf_counter()
    with workdir(args.keep) as path:
        Bench(tree, path, args).run()
    print(f"Total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
