"""The Makefile: its Python (asked for, pyenv's too, else .venv's), its lock, make run's recipe."""

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
    """Run make in the copy, with fake Pythons first on the PATH and no PYTHON set.

    Its home is the copy's (no pyenv there unless a test makes one), not the machine's.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    for name in ("PYTHON", "PYTHONS", "PYENV_ROOT"):
        env.pop(name, None)
    env["HOME"] = str(clone)
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
    # The machine's own python3.12 (nox puts pyenv's on the PATH) is not this copy's.
    refusing_shim(tmp_path / "bin" / "python3.12")
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
        f"No Python interpreter 'python3.99' found, on the PATH or in {clone}/.pyenv/versions:"
        " name one that is (PYTHON=python3.11 or PYTHON=python3.13) or install it;"
        " supported: 3.11 3.12 3.13"
    )
    assert "requirements/py.txt" not in result.stderr
    assert (clone / ".venv").exists() is venv  # nothing built, nothing removed


def refusing_shim(path: Path) -> Path:
    """Write a pyenv shim for a Python pyenv has installed but not selected: it refuses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\necho "pyenv: $(basename $0): command not found" >&2\nexit 127\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def pyenv(clone: Path) -> Path:
    """Give the copy a pyenv with 3.13 installed, unselected: only its shim on the PATH."""
    (clone / "bin" / "python3.13").unlink()
    refusing_shim(clone / "bin" / "python3.13")
    root = clone / "pyenv"
    for version in ("3.13.2", "3.13.10", "3.13.9", "3.13-dev", "3.12.7"):
        fake_python(root / "versions" / version / "bin" / f"python{version[:4]}", version[:4])
    return root


@pytest.mark.parametrize("variable", ["PYENV_ROOT", "HOME"])
def test_a_python_named_that_only_pyenv_has_is_its_newest_patch(
    clone: Path, pyenv: Path, variable: str
) -> None:
    if variable == "HOME":  # pyenv's default root: ~/.pyenv
        pyenv = pyenv.rename(clone / ".pyenv")
        result = make(clone, "--dry-run", "run", "PYTHON=python3.13")
    else:
        result = make(clone, "--dry-run", "run", "PYTHON=python3.13", f"PYENV_ROOT={pyenv}")
    assert result.returncode == 0, result.stderr
    newest = pyenv / "versions" / "3.13.10" / "bin" / "python3.13"
    assert f"|| {newest} -m venv .venv" in result.stdout
    assert "-c requirements/py3.13.txt -e ." in result.stdout


def test_a_missing_python_s_message_names_one_that_is_there(clone: Path, pyenv: Path) -> None:
    shutil.rmtree(pyenv / "versions" / "3.13.2")
    shutil.rmtree(pyenv / "versions" / "3.13.9")
    shutil.rmtree(pyenv / "versions" / "3.13.10")  # only 3.13-dev, which is not a release
    result = make(clone, "run", "PYTHON=python3.13", f"PYENV_ROOT={pyenv}")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        f"No Python interpreter 'python3.13' found, on the PATH or in {pyenv}/versions:"
        " name one that is (PYTHON=python3.11 or PYTHON=python3.12) or install it;"
        " supported: 3.11 3.12 3.13"
    )


@pytest.mark.parametrize("target", ["run", "lint", "test-fast", "bench"])
def test_without_python_named_the_lock_is_venv_s_not_python3_s(clone: Path, target: str) -> None:
    """.venv made with 3.13, python3 is 3.11: every install takes 3.13's lock, and keeps .venv."""
    fake_python(clone / ".venv" / "bin" / "python", "3.13")
    fake_python(clone / "bin" / "python3", "3.11")
    (clone / ".venv" / ".serving").unlink()  # pyproject.toml changed: installs again
    result = make(clone, "--dry-run", target)
    assert result.returncode == 0, result.stderr
    assert "requirements/py3.13.txt" in result.stdout
    assert "py3.11" not in result.stdout
    assert "Rebuilding" not in result.stdout
    assert "test -x .venv/bin/python ||" in result.stdout  # the existing .venv is kept


def test_an_unsupported_python_s_message_names_supported_ones_that_are_there(clone: Path) -> None:
    shutil.rmtree(clone / ".venv")
    fake_python(clone / "bin" / "python3", "3.10")
    result = make(clone, "run")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "No requirements/py3.10.txt: supported Pythons are 3.11 3.12 3.13"
        " (PYTHON=python3.11 or PYTHON=python3.13)"
    )


def test_make_run_logs_each_request_takes_another_address_and_keeps_scripts_sessions() -> None:
    # Not a sub-make of the make that ran pytest (`make test-fast`), which would print
    # "make[1]: Leaving directory" after the recipes.
    outside_make = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    recipes = subprocess.run(
        ["make", "--dry-run", "--always-make", "run", "BIND=127.0.0.1:8001"],
        cwd=ROOT,
        env=outside_make,
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
