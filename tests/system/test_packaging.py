"""The wheel: built from a fresh clone, versioned by git, serving from outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
from packaging.version import Version

from tests.servers import ROOT
from tests.servers import TLS
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env
from tests.servers import tables_in
from tests.wheels import builds_offline
from tests.wheels import git
from tests.wheels import run

WHERE_FROM = "import asgi, flaskr_async; print(asgi.__file__, flaskr_async.__file__)"


def version_of(wheel: Path) -> Version:
    """Return the version in a wheel's file name."""
    return Version(wheel.name.split("-")[1])


def package_files(wheel: Path) -> set[str]:
    """Return the files of the flaskr_async package in a wheel, relative to the package."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    return {
        name.removeprefix("flaskr_async/") for name in names if name.startswith("flaskr_async/")
    }


def test_the_wheel_holds_exactly_the_package_files_of_the_tree(wheel: Path) -> None:
    tree = {
        path.relative_to(ROOT / "flaskr_async").as_posix()
        for path in (ROOT / "flaskr_async").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert package_files(wheel) == tree  # templates and static files too; no deleted.html


def test_the_wheel_carries_the_license_text(wheel: Path) -> None:
    """BSD-3-Clause: a binary copy must reproduce the notice, the conditions and the disclaimer."""
    with zipfile.ZipFile(wheel) as archive:
        licenses = [name for name in archive.namelist() if name.endswith("/licenses/LICENSE")]
        assert len(licenses) == 1, archive.namelist()
        text = archive.read(licenses[0]).decode()
        metadata = next(name for name in archive.namelist() if name.endswith("/METADATA"))
        fields = archive.read(metadata).decode()
    assert text == (ROOT / "LICENSE").read_text()
    assert "License-Expression: BSD-3-Clause" in fields
    assert "License-File: LICENSE" in fields


def test_the_version_comes_from_git_and_counts_the_commits(repository: Path, wheel: Path) -> None:
    version = version_of(wheel)
    # No tag yet: counted from the last version before git gave them, so above it; the dev
    # number is the number of commits (one here), so every commit builds a higher version.
    assert version > Version("1.0.0")
    assert (version.base_version, version.dev) == ("1.0.1", 1)
    assert version.local is not None
    head = git("rev-parse", "HEAD", cwd=repository).strip()
    assert head.startswith(version.local.removeprefix("g"))  # the commit it was built from


def package_data(package: Path) -> set[str]:
    """Return the modules, templates, static files and schemas of a package directory."""
    return {
        path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file()
        and (path.suffix in {".py", ".html", ".sql"} or path.parent.name == "static")
        and "__pycache__" not in path.parts
    }


def test_the_installed_wheel_serves_asgi_app_outside_the_source_tree(
    tmp_path: Path, wheel: Path
) -> None:
    site = tmp_path / "site"
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--target", site, wheel)
    assert (site / "asgi.py").is_file()
    assert package_data(ROOT / "flaskr_async") <= package_data(site / "flaskr_async")

    # Only the installed copy is importable from here: the cwd is empty, PYTHONPATH names the
    # install alone, and the venv's editable install of the source tree comes after PYTHONPATH.
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    database = tmp_path / "flaskr.sqlite"
    env = {**server_env(database), "PYTHONPATH": str(site)}
    where = run(sys.executable, "-c", WHERE_FROM, cwd=cwd, env=env)
    modules = [Path(name) for name in where.split()]
    assert modules == [site / "asgi.py", site / "flaskr_async" / "__init__.py"]

    port = free_port()
    with running(hypercorn_command(port), env, port, cwd=cwd) as server:
        assert httpx.get(server.url + "/hello", verify=TLS).text == "Hello, World!"
        index = httpx.get(server.url + "/", verify=TLS)
        assert index.status_code == 200
        assert "Log In" in index.text  # rendered from the installed templates
        style = httpx.get(server.url + "/static/style.css", verify=TLS)
        assert style.status_code == 200
        assert style.content == (ROOT / "flaskr_async" / "static" / "style.css").read_bytes()
        # The lifespan created the schema from the installed schema.sql.
        assert {"user", "post", "login_attempt", "user_session"} <= tables_in(database)
        assert server.stop() == 0


def test_an_editable_install_prints_no_warning(repository: Path, tmp_path: Path) -> None:
    """make run's `pip install -e .` in a fresh venv: no boxed warning that looks like a fault."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    isolation = ["--no-build-isolation"] if builds_offline() else []
    # This environment's pip (a venv's bundled one may be too old to show the build's output).
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
        + ["--quiet", "--no-deps", *isolation, "--editable", str(repository)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # pip's own notes on this machine's index settings are not the project's.
    output = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if not line.startswith("WARNING: Location ")
    ]
    assert not any("Warning" in line or "****" in line for line in output), "\n".join(output)
    # The clone's files are the ones imported (found, not imported: no dependencies here).
    find = (
        "from importlib.util import find_spec as f;"
        " print(f('asgi').origin, f('flaskr_async').origin)"
    )
    found = run(venv / "bin" / "python", "-c", find, cwd=tmp_path).split()
    assert found == [str(repository / "asgi.py"), str(repository / "flaskr_async" / "__init__.py")]
