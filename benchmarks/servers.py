"""The servers under test: each one's command line and environment, one worker unless told.

A command's ``{port}`` is filled in by ``harness.start``. Servers run with the served tree as
their cwd and first on PYTHONPATH, so ``asgi:app`` is that tree's app; the harness's own apps
(bare_asgi.py, plain_quart.py, reads_on_the_loop.py, reference_flask.py) are given by file
path, so they come from the harness whatever ``--tree`` serves.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks.harness import HERE

PYTHON = sys.executable
SECRET_KEY = "benchmark-secret-key-that-is-long-enough-to-serve"
# The harness's apps, by file path: hypercorn puts their folder first on the worker's sys.path.
BARE_ASGI = str(HERE / "bare_asgi.py") + ":app"
PLAIN_QUART = str(HERE / "plain_quart.py") + ":app"
READS_ON_THE_LOOP = str(HERE / "reads_on_the_loop.py") + ":app"
# What the index's server table calls each server (goal 5).
DESCRIPTIONS = {
    "flaskr": "Flask + sqlite3, gunicorn sync, connection per request (Flaskr-style)",
    "flask-reuse": "Flask + sqlite3, gunicorn sync, reused connection",
    "full": "the app as make run serves it (hypercorn on uvloop, shipped hypercorn.toml)",
    "full-asyncio": "the app, hypercorn on asyncio's own loop (-k asyncio), shipped settings",
    "uvicorn": "the app, uvicorn (uvloop + httptools)",
    "granian": "the app, granian (ASGI)",
}


def environment(tree: Path, database: Path | str | None = None, **settings: str) -> dict[str, str]:
    """Return a server environment: the tree on the path, FLASKR_* settings applied."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASKR_")}
    env.update(PYTHONPATH=str(tree), BENCH_TREE=str(tree))
    env.update(FLASKR_SECRET_KEY=SECRET_KEY, FLASKR_SESSION_COOKIE_SECURE="false")
    if database is not None:
        env["FLASKR_DATABASE"] = str(database)
    env.update({f"FLASKR_{key}": value for key, value in settings.items()})
    return env


def bind() -> list[str]:
    """Return the serve command's (and hypercorn's) option binding the server's port."""
    return ["--bind", "127.0.0.1:{port}"]


def shipped_config(tree: Path) -> list[str]:
    """Return the option naming the served tree's hypercorn.toml (serve and hypercorn)."""
    return ["--config", str(tree / "hypercorn.toml")]


def hypercorn(target: str, workers: int = 1) -> list[str]:
    """Return the command serving an ASGI target with hypercorn, one worker by default."""
    return [PYTHON, "-m", "hypercorn", *bind(), "-w", str(workers), target]


def hypercorn_shipped(
    tree: Path, target: str = "asgi:app", worker_class: str = "uvloop"
) -> list[str]:
    """Return plain hypercorn with the shipped settings, on the given event loop."""
    return [
        *(PYTHON, "-m", "hypercorn", *shipped_config(tree), "-k", worker_class),
        *bind(),
        target,
    ]


def shipped(tree: Path) -> list[str]:
    """Return make run's command: the serve command with the shipped hypercorn.toml."""
    return [PYTHON, "-m", "flaskr_async", "serve", *shipped_config(tree), *bind()]


def serve() -> list[str]:
    """Return the project's own entry point with its defaults: one worker served in-process."""
    return [PYTHON, "-m", "flaskr_async", "serve", *bind()]


def gunicorn() -> list[str]:
    """Return the command serving the Flask reference with gunicorn, one sync worker."""
    return [
        PYTHON,
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


def uvicorn() -> list[str]:
    """Return uvicorn (uvloop, httptools), one worker, no access log (as gunicorn's default)."""
    return [
        PYTHON,
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


def granian() -> list[str]:
    """Return granian's ASGI interface, one worker (it logs no access by default)."""
    return [
        PYTHON,
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
