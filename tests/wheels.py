"""Build the project's wheel as docs/deployment.md does: from a fresh clone of a git repository."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.servers import ROOT

# What a clean clone does not have (.gitignore, plus .git): local state, caches, builds.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    *(".git", ".venv", ".nox", "__pycache__", "*.egg-info", "build", "dist", "instance"),
    *(".coverage*", "htmlcov", ".*_cache", ".hypothesis", "test-artifacts"),
)


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to its end and return its output, failing with all of it if it fails."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def installed(requirement: str) -> bool:
    """Say whether this environment satisfies a requirement such as ``setuptools>=77``."""
    wanted = Requirement(requirement)
    try:
        version = importlib.metadata.version(wanted.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return wanted.specifier.contains(version, prereleases=True)


def builds_offline() -> bool:
    """Say whether pip can build the wheel with this environment's setuptools, fetching none."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    # setuptools builds wheels itself from 70.1 on; before, it needs the `wheel` package (a
    # Python 3.11 venv has setuptools 65.5 and no wheel). Else pip builds in isolation.
    return all(installed(requirement) for requirement in [*requires, "setuptools>=70.1"])


def git(*args: str, cwd: Path) -> str:
    """Run a git command as a throwaway committer."""
    return run("git", "-c", "user.name=test", "-c", "user.email=test@invalid", *args, cwd=cwd)


def build_wheel(source: Path, dist: Path) -> Path:
    """Build the project's wheel from a source tree into ``dist``, as the guide does."""
    isolation = ["--no-build-isolation"] if builds_offline() else []
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", dist, source)
    (wheel,) = dist.glob("flaskr_async-*.whl")
    return wheel
