"""The Makefile: another Python rebuilds .venv, a missing one is named; make run's recipe."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import ROOT


def fake_python(path: Path, version: str) -> Path:
    """Write an executable that answers the Makefile's version question like that Python."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def make(clone: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run make in the copy, with fake Pythons first on the PATH and no PYTHON set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    env.pop("PYTHON", None)
    env.pop("PYTHONS", None)
    env["PATH"] = f"{clone / 'bin'}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["make", *arguments], cwd=clone, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """Copy what the Makefile reads, with a .venv made by Python 3.11 and up to date."""
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    fake_python(tmp_path / ".venv" / "bin" / "python", "3.11")
    (tmp_path / ".venv" / ".serving").touch()
    fake_python(tmp_path / "bin" / "python3", "3.13")  # the default PYTHON, on the PATH
    fake_python(tmp_path / "bin" / "python3.13", "3.13")
    fake_python(tmp_path / "bin" / "python3.11", "3.11")
    return tmp_path


@pytest.mark.parametrize(
    ("arguments", "rebuilds"),
    [
        (["PYTHON=python3.13"], True),  # asked for another Python: not the old .venv
        (["PYTHON=python3.11"], False),  # the one .venv has
        ([], False),  # the default python3 is not a choice: .venv stays as it is
    ],
)
def test_a_python_asked_for_that_venv_lacks_rebuilds_it(
    clone: Path, arguments: list[str], rebuilds: bool
) -> None:
    dry_run = make(clone, "--dry-run", "run", *arguments)
    assert dry_run.returncode == 0, dry_run.stderr
    assert (
        "Rebuilding .venv (Python 3.11) with PYTHON=python3.13 (Python 3.13)" in dry_run.stdout
    ) is rebuilds
    assert ("python3.13 -m venv .venv" in dry_run.stdout) is rebuilds
    assert "flaskr_async serve" in dry_run.stdout


@pytest.mark.parametrize("venv", [True, False])
def test_a_python_that_is_not_there_is_named(clone: Path, venv: bool) -> None:
    if not venv:
        shutil.rmtree(clone / ".venv")
    result = make(clone, "run", "PYTHON=python3.99")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "No Python interpreter 'python3.99' found: install it, or name another"
        " (PYTHON=python3.13); supported: 3.11 3.12 3.13"
    )
    assert "requirements/py.txt" not in result.stderr
    assert (clone / ".venv").exists() is venv  # nothing built, nothing removed


def test_make_run_logs_each_request_takes_another_address_and_keeps_scripts_sessions() -> None:
    recipes = subprocess.run(
        ["make", "--dry-run", "--always-make", "run", "BIND=127.0.0.1:8001"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run = recipes.replace("\\\n\t", "").splitlines()[-1]  # the recipe's continued line, joined
    # Plain HTTP: the session cookie is not Secure, unless config.py or the environment sets
    # it; no FLASKR_ variable set here, which would override config.py (test_plain_http.py).
    assert run.endswith(
        "-m flaskr_async serve --config hypercorn.toml --access-logfile - --plain-http"
        " --bind 127.0.0.1:8001"
    )
    assert "FLASKR_" not in run
