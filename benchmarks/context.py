"""What every phase is handed: the options, the seeded databases, the servers, the results so far.

A phase is a function of a ``Context``: it starts servers with ``serve`` (stopped once every
phase has run) or ``start`` (its own to stop), measures with ``measure``, ``interleave`` or
``hello_beside``, and files what it found in ``results``, which report.py prints.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from benchmarks import servers
from benchmarks.harness import ROOT
from benchmarks.harness import Run
from benchmarks.harness import Series
from benchmarks.harness import Server
from benchmarks.harness import Step
from benchmarks.harness import answers
from benchmarks.harness import start
from benchmarks.harness import wrk


@dataclass(frozen=True)
class Options:
    """The command line's settings of the runs (run.py parses them, with their defaults)."""

    duration: float  # seconds per run
    warmup: float  # seconds of warm-up per server
    reps: int
    max_steal: float  # percent of CPU steal above which a run is noisy, not counted
    phases: tuple[str, ...]
    pg_duration: float  # seconds per run of the postgres phase
    retries: int  # extra attempts at a run found noisy
    keep: bool  # keep the databases and the server logs


@dataclass
class Results:
    """Everything the phases measured, for the report."""

    series: dict[str, Series] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)  # worker peak RSS, MB
    startups: dict[str, list[float]] = field(default_factory=dict)  # seconds to the first 200
    logins: list[str] = field(default_factory=list)  # login_storm.py's line per repetition
    floods: list[str] = field(default_factory=list)  # field_flood.py's line per repetition
    postgres_labels: list[str] = field(default_factory=list)  # the postgres phase's series
    breakdown: str = ""  # profile_backends.py's table
    costs: str = ""  # profile_index.py --costs's table


@dataclass
class Context:
    """The served tree, the scratch folder and its databases, the options and the results."""

    tree: Path
    workdir: Path
    options: Options
    databases: dict[str, Path]
    password_hash: str
    results: Results = field(default_factory=Results)
    servers: list[Server] = field(default_factory=list)

    @property
    def template(self) -> Path:
        """Return the empty SQLite file that init-db made, copied by every seeded database."""
        return self.workdir / "empty.sqlite"

    def env(self, database: Path | str | None = None, **settings: str) -> dict[str, str]:
        """Return a server environment: the tree on the path, FLASKR_* settings applied."""
        return servers.environment(self.tree, database, **settings)

    def start(self, name: str, command: Sequence[str], env: dict[str, str]) -> Server:
        """Start a server in the served tree, its log in the scratch folder; the caller stops it."""
        return start(name, command, env, self.tree, self.workdir)

    def serve(self, name: str, command: Sequence[str], env: dict[str, str]) -> Server:
        """Start a server for the rest of the benchmark."""
        server = self.start(name, command, env)
        self.servers.append(server)
        return server

    def stop_servers(self) -> None:
        """Stop every server that ``serve`` started."""
        for server in self.servers:
            server.stop()

    def warm(self, server: Server, path: str, env: Mapping[str, str] | None = None) -> None:
        """Warm a server up on ``path`` (imports, caches, the pool) before measuring."""
        if env is None and not answers(int(server.url.rsplit(":", 1)[1]), path):
            raise RuntimeError(f"{server.name} does not answer {path}:\n{server.log.read_text()}")
        run = self.measure(None, server, path, 64, self.options.warmup, env)
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
        run = wrk(server.url + path, connections, seconds, self.options.max_steal, env, watch)
        if label is not None:
            self.results.series.setdefault(label, Series(label)).runs.append(run)
            flag = " NOISY" if run.noisy else ""
            print(
                f"  {label:<34} {run.rps:9.0f} req/s  p50 {run.p50_ms:7.2f} ms  p99"
                f" {run.p99_ms:7.2f} ms  errors {run.errors:<5} steal {run.steal:4.1f}%{flag}",
                flush=True,
            )
        return run

    def interleave(self, plan: Sequence[Step], seconds: float) -> None:
        """Run every measurement of ``plan`` once per repetition, in order, repeatedly."""
        for rep in range(self.options.reps):
            print(f" repetition {rep + 1}/{self.options.reps}", flush=True)
            for step in plan:
                for _ in range(1 + self.options.retries):
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

    def hello_beside(
        self, server: Server, labels: tuple[str, str], load: Sequence[str], outputs: list[str]
    ) -> None:
        """Measure /hello at 1 connection quiet, then beside a load script; keep its line.

        ``load`` is the script's module (``benchmarks.login_storm``) and its arguments but the
        last, the seconds to run, which this adds.
        """
        quiet, loaded = labels
        duration = self.options.duration
        self.warm(server, "/hello")
        for rep in range(self.options.reps):
            print(f" repetition {rep + 1}/{self.options.reps}", flush=True)
            self.measure(quiet, server, "/hello", 1, duration)
            command = [servers.PYTHON, "-m", *load, str(duration + 2)]
            clients = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            time.sleep(1)  # let the clients get going (the logins reach the hashing)
            self.measure(loaded, server, "/hello", 1, duration)
            out, _ = clients.communicate(timeout=60)
            outputs.append(out.strip())
            print(f"  {out.strip()}", flush=True)
