"""Lint once, then type-check and run the whole suite on every supported Python, each with its lock.

``nox`` runs them all (``make test`` calls it); ``nox -s tests-3.13`` runs one Python, and
``nox -s tests-3.13 -- tests/db/test_db.py -x`` passes arguments to pytest instead of the
coverage run.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYTHONS = ["3.11", "3.12", "3.13"]  # keep in step with requires-python and requirements/
NEWEST = PYTHONS[-1]
ROOT = Path(__file__).parent

nox.options.sessions = ["lint", "tests"]
# uv creates and fills each virtualenv in seconds; --seed adds pip, which the packaging test runs.
nox.options.default_venv_backend = "uv"
# A missing Python is skipped with one line here, and is an error under CI=true. Never download
# an interpreter: the machine's own Pythons are the ones the README promises.
nox.options.error_on_missing_interpreters = os.environ.get("CI") == "true"
nox.options.download_python = "never"


def pyenv_pythons() -> list[str]:
    """Return the bin folders of pyenv's installed Pythons, newest patch release first."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    folders = sorted((root / "versions").glob("3.*/bin"), key=patch_order, reverse=True)
    return [str(folder) for folder in folders]


def patch_order(folder: Path) -> tuple[int, ...]:
    """Order ``versions/3.13.1/bin`` after ``3.13.0/bin``; folders not named by a version first."""
    try:
        return tuple(int(part) for part in folder.parent.name.split("."))
    except ValueError:
        return ()


# pyenv's shims answer `python3.12` only for the version it has selected; its installed but
# unselected Pythons are found through their own bin folders, after whatever PATH already has.
os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *pyenv_pythons()])


def server_ports(index: int) -> str:
    """Return the part of the tests' server ports (20000-32767) of the ``index``-th Python."""
    share = (32768 - 20000) // len(PYTHONS)
    first = 20000 + index * share
    return f"{first}-{first + share - 1}"


def venv_python(python: str) -> str:
    """Return the interpreter of the ``tests`` session's virtualenv for one Python."""
    return str(ROOT / ".nox" / f"tests-{python.replace('.', '-')}" / "bin" / "python")


def lock(python: str) -> str:
    """Return the constraints file that pins the whole stack for one Python."""
    return str(ROOT / "requirements" / f"py{python}.txt")


def install(session: nox.Session) -> None:
    """Install the project with its development tools, at the versions locked for this Python.

    The suite starts some 180 Python processes (servers, commands), each importing about 400
    modules of the virtualenv. uv writes no bytecode unless asked, and where
    PYTHONDONTWRITEBYTECODE is set (as on this project's machines) no process writes it
    either: each compiled every module from source, 0.6 s of CPU a start. Compiled once here,
    at install (as pip does by default for `make run`'s .venv), a start costs half that.
    The packages the virtualenv was seeded with (pip, setuptools, wheel) are compiled too:
    the packaging and documentation tests run pip some 20 times a suite, each compiling it
    (`pip show` took 0.6 s of CPU, compiled 0.24).
    """
    assert isinstance(session.python, str)
    compiled = ["--compile-bytecode"] if session.venv_backend == "uv" else []  # pip: by default
    session.install(*compiled, "-c", lock(session.python), "-e", ".[dev]")
    site = Path(session.virtualenv.location, "lib", f"python{session.python}", "site-packages")
    session.run_install("python", "-m", "compileall", "-q", "-j", "0", str(site))


@nox.session(python=NEWEST)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (the same on every Python, so once)."""
    session.install("-c", lock(NEWEST), "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS, venv_params=["--seed"])
def tests(session: nox.Session) -> None:
    """Check types (strict) against this Python's stack, then run the whole suite.

    Arguments after ``--`` go to pytest instead, without the coverage gate.
    """
    assert isinstance(session.python, str)
    install(session)
    if not session.posargs:
        # Per Python: Quart 0.22 and 0.23 type some APIs differently.
        session.run("mypy", "--python-version", session.python)
    arguments = session.posargs or ["--cov", "--cov-report=term-missing"]
    # `make test` runs the Pythons side by side: a coverage file each, and ports apart.
    env = {
        "COVERAGE_FILE": str(ROOT / ".nox" / f"coverage-{session.python}"),
        "TEST_SERVER_PORTS": server_ports(PYTHONS.index(session.python)),
    }
    if not session.posargs:
        # And each from another third of the run (tests/run_order.py); tests named are run
        # in their order.
        env["TEST_ORDER_START"] = str(PYTHONS.index(session.python) / len(PYTHONS))
    if session.python == PYTHONS[0]:
        # The oldest Python's suite checks names and passwords against every other Python's
        # (tests/system/test_cross_python.py), once for the whole run.
        # Those filled: nox skips a Python that is not installed (an error under CI=true).
        others = [
            venv_python(python) for python in PYTHONS[1:] if Path(venv_python(python)).exists()
        ]
        env["TEST_OTHER_PYTHONS"] = os.pathsep.join(others)
    # The project's own modules too, for the same reason (the editable install leaves them in
    # place); compileall writes bytecode whatever PYTHONDONTWRITEBYTECODE says.
    session.run("python", "-m", "compileall", "-q", "flaskr_async", "asgi.py", "tests")
    session.run("python", "-m", "pytest", *arguments, env=env)


@nox.session(python=NEWEST)
def locks(session: nox.Session) -> None:
    """Re-resolve requirements/py3.X.txt: the newest releases pyproject.toml allows, per Python."""
    session.install("-c", lock(NEWEST), "uv")
    for python in PYTHONS:
        session.run(
            *("uv", "pip", "compile", "--quiet", "--upgrade", "pyproject.toml"),
            *("--extra", "dev", "--extra", "bench", "--python-version", python),
            *("--output-file", f"requirements/py{python}.txt"),  # relative: named in its header
        )
