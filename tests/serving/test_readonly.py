"""Deployments where the code is read-only: only what writes to the instance folder fails."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart
from quart.testing.app import LifespanError

from flaskr_async import create_app
from flaskr_async.serving import command as entry_point
from tests.servers import ROOT
from tests.servers import TEST_SECRET_KEY
from tests.servers import TLS
from tests.servers import free_port
from tests.servers import running
from tests.servers import start

# No one, root included, creates anything in /proc: an unwritable folder even for root.
UNWRITABLE = "/proc/flaskr_async-instance"


def test_serve_says_which_folder_and_setting_when_it_cannot_write_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Quart, "auto_find_instance_path", lambda self: UNWRITABLE)
    for name in [name for name in os.environ if name.startswith("FLASKR_")]:
        monkeypatch.delenv(name)
    assert entry_point.main(["serve", "--bind", f"127.0.0.1:{free_port()}"]) == 1
    assert capsys.readouterr().err == (
        f"Start-up failed: cannot write SECRET_KEY to {UNWRITABLE}/config.py: No such file or"
        f" directory; set FLASKR_SECRET_KEY or make {UNWRITABLE} writable\n"
    )


async def test_an_unwritable_sqlite_folder_names_the_folder_and_the_setting(
    tmp_path: Path,
) -> None:
    database = tmp_path / "missing" / "flaskr.sqlite"
    app = create_app({"TESTING": True, "DATABASE": str(database)})
    with pytest.raises(LifespanError) as error:
        async with app.test_app():
            pass  # pragma: no cover - start-up fails
    assert str(error.value) == (
        f"Error during startup Cannot use DATABASE {str(database)!r}: unable to open database"
        f" file; set DATABASE, or make {database.parent} exist and be writable by this user"
    )


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_backup_is_readable_by_its_owner_only(
    tmp_path: Path, app_config: dict[str, Any], umask: int
) -> None:
    runner = create_app(app_config).test_cli_runner()
    target = tmp_path / "copy.backup"
    previous = os.umask(umask)
    try:
        result = runner.invoke(args=["backup", str(target)])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it holds password hashes
    assert target.stat().st_size > 0


# The same as a real unprivileged process: code and instance folder owned by root. setpriv,
# unlike runuser, execs the command, so the server's own exit status comes back.
SETPRIV = shutil.which("setpriv")
NOBODY = pwd.getpwnam("nobody")
AS_NOBODY = [
    str(SETPRIV),
    f"--reuid={NOBODY.pw_uid}",
    f"--regid={NOBODY.pw_gid}",
    "--clear-groups",
    "--",
]
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


def nobody_can_run(python: Path) -> bool:
    """Tell whether the user nobody can start this Python (a home folder may hide it)."""
    if os.geteuid() != 0 or SETPRIV is None:
        return False
    check = [*AS_NOBODY, str(shutil.which("env")), "-i", str(python), "-c", "import sys"]
    return subprocess.run(check, capture_output=True).returncode == 0


PYTHON = next(
    (p for p in (Path(sys.executable), SYSTEM_PYTHON) if p.exists() and nobody_can_run(p)), None
)
needs_nobody = pytest.mark.skipif(
    PYTHON is None, reason="needs root, setpriv and a Python the user nobody can run"
)


@pytest.fixture
def read_only_install() -> Iterator[Path]:
    """Copy the package into a root-owned folder that nobody can read but not write."""
    folder = Path(tempfile.mkdtemp(prefix="flaskr-read-only-"))
    try:
        folder.chmod(0o755)
        shutil.copytree(
            ROOT / "flaskr_async",
            folder / "flaskr_async",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        yield folder
    finally:
        shutil.rmtree(folder)


def as_nobody(folder: Path, *args: str, **settings: str) -> list[str]:
    """Return the serve command run as nobody, with only these settings; run it from folder."""
    assert PYTHON is not None
    # The copy first, then this virtualenv's packages; the editable install is not used.
    path = f"{folder}:{sysconfig.get_paths()['purelib']}"
    env = [f"{name}={value}" for name, value in settings.items()]
    clean = [str(shutil.which("env")), "-i", "PATH=/usr/bin:/bin", f"PYTHONPATH={path}"]
    return [*AS_NOBODY, *clean, *env, str(PYTHON), "-m", "flaskr_async", "serve", *args]


@pytest.mark.system
@needs_nobody
@pytest.mark.parametrize("instance", ["missing", "read-only"])
def test_a_read_only_install_fails_only_where_it_writes(
    read_only_install: Path, instance: str
) -> None:
    folder = read_only_install / "instance"
    if instance == "read-only":
        folder.mkdir(mode=0o755)
    port = free_port()
    bind = ("--bind", f"127.0.0.1:{port}")
    server = start(as_nobody(read_only_install, *bind), {}, port, cwd=read_only_install)
    assert server.process.wait(30) == 1
    assert server.output().strip() == (
        f"Start-up failed: cannot write SECRET_KEY to {folder}/config.py: Permission denied;"
        f" set FLASKR_SECRET_KEY or make {folder} writable"
    )

    command = as_nobody(read_only_install, *bind, FLASKR_SECRET_KEY=TEST_SECRET_KEY)
    server = start(command, {}, port, cwd=read_only_install)
    assert server.process.wait(30) == 1
    output = server.output()
    database = folder / "flaskr.sqlite"
    assert (
        f"Cannot use DATABASE {str(database)!r}: unable to open database file; set DATABASE,"
        f" or make {folder} exist and be writable by this user"
    ) in output
    assert not folder.exists() or not any(folder.iterdir())


@pytest.mark.system
@needs_nobody
def test_a_read_only_install_serves_with_every_setting_in_the_environment(
    read_only_install: Path,
) -> None:
    """Issue 12: this failed in create_app with PermissionError on the instance folder."""
    data = read_only_install / "data"
    data.mkdir()
    shutil.chown(data, "nobody")
    port = free_port()
    command = as_nobody(
        read_only_install,
        "--bind",
        f"127.0.0.1:{port}",
        FLASKR_SECRET_KEY=TEST_SECRET_KEY,
        FLASKR_DATABASE=str(data / "flaskr.sqlite"),
        FLASKR_SESSION_COOKIE_SECURE="false",
    )
    with running(command, {}, port, cwd=read_only_install) as server:
        assert httpx.get(server.url + "/", verify=TLS).status_code == 200
        assert server.stop() == 0
        output = server.output()
    assert f"Database closed: {data / 'flaskr.sqlite'}" in output
    assert not (read_only_install / "instance").exists()
