"""Side-by-side benchmark of flaskr-async against its references; prints medians, ratios, goals.

``.venv/bin/python -m benchmarks [--tree DIR] [--duration S] [--reps N]``. Every server
runs on 127.0.0.1 with one worker (the ``postgres`` phase: one and two); wrk drives it. Runs
are interleaved (A, B, A, B, ...), repeated, and a run with too much CPU steal is reported but
not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

from benchmarks import costs
from benchmarks import flood
from benchmarks import hello
from benchmarks import index
from benchmarks import live
from benchmarks import logins
from benchmarks import postgres
from benchmarks import seed
from benchmarks import startup
from benchmarks.context import Context
from benchmarks.context import Options
from benchmarks.harness import ROOT
from benchmarks.report import print_report
from tests.postgres_server import find_tool

PHASES = ("hello", "index", "logins", "flood", "startup", "postgres", "costs", "live")
# The phases wrk drives; startup, costs and live need no wrk.
WRK_PHASES = {"hello", "index", "logins", "flood", "postgres"}
# The phases whose servers may run together, in the order they run; startup comes after them,
# once every server has stopped, then the report, then live.
WITH_SERVERS: tuple[tuple[str, Callable[[Context], None]], ...] = (
    ("hello", hello.run_phase),
    ("index", index.run_phase),
    ("logins", logins.run_phase),
    ("flood", flood.run_phase),
    ("postgres", postgres.run_phase),
    ("costs", costs.run_phase),
)


def seed_databases(tree: Path, workdir: Path) -> tuple[dict[str, Path], str]:
    """Make the databases (100 posts, 100,000 posts, copies of 100 for the logins and Flask).

    Return them with the benchmark user's password hash, which the postgres phase seeds too.
    """
    began = time.perf_counter()
    template = workdir / "empty.sqlite"
    seed.init_template(tree, template)
    password_hash = seed.bench_password_hash(tree)
    databases = {
        "small": seed.seed(template, workdir / "posts100.sqlite", 100, password_hash),
        "large": seed.seed(template, workdir / "posts100k.sqlite", 100_000, password_hash),
        "logins": seed.seed(template, workdir / "logins.sqlite", 100, password_hash),
        "flask": seed.seed(template, workdir / "flask100.sqlite", 100, password_hash),
    }
    print(f"Seeded databases in {time.perf_counter() - began:.2f} s", flush=True)
    return databases, password_hash


def run(tree: Path, workdir: Path, options: Options) -> None:
    """Seed, run every chosen phase, stop every server, print the report; live comes last."""
    databases, password_hash = seed_databases(tree, workdir)
    ctx = Context(tree, workdir, options, databases, password_hash)
    try:
        for name, run_phase in WITH_SERVERS:
            if name in options.phases:
                run_phase(ctx)
    finally:
        ctx.stop_servers()
    if "startup" in options.phases:
        startup.run_phase(ctx)
    print_report(ctx.results, options)
    if "live" in options.phases:  # benchmarks.live: its own servers and report lines
        live.run_phase(tree, workdir)


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
def scratch(keep: bool) -> Iterator[Path]:
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT, help="project tree to serve")
    parser.add_argument("--duration", type=float, default=5, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per server")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (at least 3)")
    parser.add_argument(
        "--max-steal", type=float, default=5, help="steal %% above which a run is noisy"
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        type=lambda value: value.split(","),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    parser.add_argument(
        "--pg-duration", type=float, default=4, help="seconds per run of the postgres phase"
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="extra attempts at a run found noisy"
    )
    parser.add_argument("--keep", action="store_true", help="keep databases and server logs")
    args = parser.parse_args(argv)
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        reps=args.reps,
        max_steal=args.max_steal,
        phases=tuple(args.phases),
        pg_duration=args.pg_duration,
        retries=args.retries,
        keep=args.keep,
    )
    check_tools(options.phases)
    tree = args.tree.resolve()
    print(f"Serving the tree {tree}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    began = time.perf_counter()
    with scratch(options.keep) as workdir:
        run(tree, workdir, options)
    print(f"Total {time.perf_counter() - began:.0f} s")
