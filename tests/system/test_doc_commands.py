"""The commands of README.md and docs/deployment.md, run as a reader meets them.

README's run in a copy of the tree whose ``.venv`` is the test's own virtualenv; the guide's
on a host in a folder: ``/opt``, ``/etc``, ``/var`` and ``/tmp/flaskr-build`` inside it, as the
test's user. tests/doc_commands.py says how each command runs, or why it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import httpx
import pytest

from tests.doc_commands import COMMANDS
from tests.doc_commands import Run
from tests.doc_commands import Script
from tests.doc_commands import Serve
from tests.doc_commands import blocks_of
from tests.postgres_server import run_as_admin
from tests.postgres_server import with_database
from tests.servers import ROOT
from tests.servers import TLS
from tests.servers import Server
from tests.servers import free_port
from tests.servers import running
from tests.servers import start
from tests.servers import wait_until_serving
from tests.wheels import NOT_IN_A_CLONE

# The guide's host folders, moved into the test's folder (not /opt/flaskr-async/var/...).
HOST_PATHS = re.compile(r"(?<![\w.~-])(/tmp/flaskr-build|/opt/|/etc/|/var/)")


@dataclass
class Shell:
    """The state a reader's shell keeps between commands: folder, environment, placeholders."""

    cwd: Path
    env: dict[str, str]
    values: dict[str, Callable[[], str]]
    host: Path | None = None  # the guide's host folder; None for the README
    unit_env: dict[str, str] = field(default_factory=dict)  # the service's environment file
    unit: Server | None = None

    def text(self, command: str) -> str:
        """Return a command as it runs here: on the host folder, placeholders filled."""
        if self.host is not None:
            # The test's user is the service user: no runuser, no -o/-g for install.
            for as_flaskr in ("runuser -u flaskr -- ", " -o flaskr -g flaskr"):
                command = command.replace(as_flaskr, "")
            command = command.replace("/path/to/flaskr-async", "{root}")
            # The guide's /usr/bin/python3 is the test's interpreter (which has venv and pip).
            command = re.sub(r"(?<![\w/.])(?:/usr/bin/)?python3 ", "{python} ", command)
            command = HOST_PATHS.sub(lambda match: f"{self.host}{match.group(1)}", command)
            command = "cd {host}" if command == "cd /" else command
        command = command.replace("127.0.0.1:8000", "127.0.0.1:{port}")
        for name, value in self.values.items():
            if "{" + name + "}" in command:
                command = command.replace("{" + name + "}", value())
        return command

    def run(self, command: str, step: Run) -> None:
        """Run one command as the reader's shell would, and check what it did."""
        text = self.text(step.instead or command)
        words = text.split(maxsplit=1)
        if words[0] == "cd":
            self.cwd = Path(words[1])
            return
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.env[name] = value
            return
        assignment = re.fullmatch(r"([A-Z_]+)='(.*)'", text)
        if assignment:  # a line of the service's environment file (single-quoted)
            self.unit_env[assignment.group(1)] = assignment.group(2)
            return
        kept = (self.cwd / step.keeps).read_bytes() if step.keeps else b""
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        output = done.stdout + done.stderr
        assert done.returncode in step.statuses, f"{command}\n{text}\n{output}"
        assert self.text(step.expect) in output, f"{command}\n{text}\n{output}"
        if step.keeps:
            assert (self.cwd / step.keeps).read_bytes() == kept, f"{command} changed {step.keeps}"

    def serve(self, command: str, step: Serve) -> None:
        """Serve with the command until it answers /hello; stop it unless it stays."""
        port = int(self.values["port"]())
        self.stop_unit()
        if step.instead == "{unit}":
            self.unit = self.start_unit(port)
            return
        text = self.text(step.instead or command)
        with running(["bash", "-c", f"exec {text}"], self.env, port, cwd=self.cwd) as server:
            answer = httpx.get(server.url + "/hello", verify=TLS)
            assert answer.text == "Hello, World!", command

    def script(self, code: str, step: Script) -> None:
        """Run a Python block with the test's interpreter while the step's command serves."""
        port = int(self.values["port"]())
        self.stop_unit()
        serve = self.text(step.serve)
        with running(["bash", "-c", f"exec {serve}"], self.env, port, cwd=self.cwd):
            done = subprocess.run(
                [sys.executable, "-c", self.text(code)],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{code}\n{output}"
        assert step.expect in done.stdout, f"{code}\n{output}"

    def start_unit(self, port: int) -> Server:
        """Start deploy/flaskr-async.service's command as systemd would, on the host folder."""
        unit = (ROOT / "deploy" / "flaskr-async.service").read_text()
        settings = dict(re.findall(r"^Environment=(\w+)=(.*)$", unit, re.MULTILINE))
        (command,) = re.findall(r"^ExecStart=(.*)$", unit, re.MULTILINE)
        (folder,) = re.findall(r"^WorkingDirectory=(.*)$", unit, re.MULTILINE)
        env = {**self.env, **settings, **self.unit_env}
        argv = [*self.text(command).split(), "--bind", f"127.0.0.1:{port}"]
        server = start(argv, env, port, cwd=Path(self.text(folder)))
        wait_until_serving(server)
        return server

    def stop_unit(self) -> None:
        """Stop the service's command, if it runs, as systemd does (SIGTERM to the main process)."""
        if self.unit is not None:
            unit, self.unit = self.unit, None
            try:
                status = unit.stop()
                output = unit.output()
            finally:
                unit.kill()  # whatever is left of its process group
            assert status == 0, output


def walk(shell: Shell, document: str) -> list[str]:
    """Run a document's commands in order; return the ones skipped (for the test's output)."""
    skipped = []
    for command, text in blocks_of((ROOT / document).read_text()):
        step = COMMANDS[command]
        began = time.monotonic()
        if isinstance(step, Run):
            shell.run(command, step)
        elif isinstance(step, Serve):
            shell.serve(command, step)
        elif isinstance(step, Script):
            shell.script(text, step)
        else:
            skipped.append(f"{command}: {step.why}")
            continue
        print(f"{time.monotonic() - began:5.2f} s  {command}")
    return skipped


def base_env(home: Path) -> dict[str, str]:
    """Return the reader's environment: no FLASKR_ setting, a home of the test's own.

    Nor make's own variables: under `make test` they would hand its job server to `make run`.
    """
    inherited = {"PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FLASKR_") and key not in inherited
    }
    return {**env, "HOME": str(home)}


def shared_values(tmp_path: Path) -> dict[str, Callable[[], str]]:
    """Return the placeholders both documents' commands may use."""
    port = str(free_port())
    return {
        "python": lambda: sys.executable,
        "port": lambda: port,
        "key": lambda: secrets.token_hex(32),
        "root": lambda: str(ROOT),
    }


def lend(venv: Path, scripts: dict[str, str], path: str = "") -> str:
    """Return a shell command writing scripts into a virtualenv's bin, and a path into its site."""
    commands = []
    if path:  # after the virtualenv's own site-packages: the installed wheel comes first
        site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
        commands.append(f"echo {path} > {site}/test-dependencies.pth")
    for name, script in scripts.items():
        commands.append(f"printf '{script}' > {venv}/bin/{name} && chmod +x {venv}/bin/{name}")
    return " && ".join(commands)


def lent_pip(venv: Path) -> str:
    """Return a shell command lending the test's pip to a virtualenv made without one."""
    # Before the packages: pip must not see (nor uninstall) the test's own flaskr-async.
    run_pip = f'#!/bin/sh\\nexec {sys.executable} -m pip --python {venv}/bin/python "$@"\\n'
    return lend(venv, {"pip": run_pip})


def lent_dependencies(venv: Path) -> str:
    """Return a shell command lending the test's packages and their commands, not PyPI's."""
    python = f"#!{venv}/bin/python\\n"
    scripts = {
        "quart": python + "from quart.cli import main\\nmain()\\n",
        "hypercorn": python + "from hypercorn.__main__ import main\\nmain()\\n",
    }
    return lend(venv, scripts, sysconfig.get_path("purelib"))


def the_test_virtualenv(venv: Path) -> None:
    """Make ``.venv`` the test's virtualenv, filled already: its bin and lib, a fresh stamp."""
    venv.mkdir()
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", venv / "pyvenv.cfg")
    for folder in ("bin", "lib"):
        (venv / folder).symlink_to(Path(sys.prefix) / folder)
    (venv / ".serving").touch()  # make run's: the serving packages are installed


@contextlib.contextmanager
def postgresql_database(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Yield a function making one database on the tests' PostgreSQL (dropped at the end).

    Asked for when Scaling out's commands come: without a PostgreSQL server the test is skipped
    there (failed under CI=true, as every PostgreSQL test), after the commands before them ran.
    """
    made: list[str] = []

    def make() -> str:
        server = request.getfixturevalue("postgres_server")
        name = f"docs_{secrets.token_hex(4)}"
        asyncio.run(run_as_admin(server, f"CREATE DATABASE {name}"))
        made.append(name)
        return with_database(server, name)

    try:
        yield make
    finally:
        for name in made:
            server = request.getfixturevalue("postgres_server")
            asyncio.run(run_as_admin(server, f"DROP DATABASE {name} WITH (FORCE)"))


def test_the_readme_s_commands_run_in_order(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    clone = tmp_path / "flaskr-async"
    shutil.copytree(ROOT, clone, ignore=NOT_IN_A_CLONE)
    the_test_virtualenv(clone / ".venv")
    values = shared_values(tmp_path)
    config = clone / "hypercorn.toml"
    config.write_text(config.read_text().replace("127.0.0.1:8000", f"127.0.0.1:{values['port']()}"))
    (tmp_path / "home").mkdir()
    # The copy's package, not the tree the virtualenv's editable install names.
    env = {**base_env(tmp_path / "home"), "PYTHONPATH": str(clone)}
    with postgresql_database(request) as database:
        shell = Shell(clone, env, {**values, "postgresql": database})
        skipped = walk(shell, "README.md")
    print("Skipped:", *skipped, sep="\n  ")
    assert (clone / "instance" / "config.py").is_file()  # make run wrote the key in the copy
    assert list((tmp_path / "home").glob("flaskr-*.sqlite"))  # the backup


def test_the_deployment_guide_s_commands_run_in_order(
    tmp_path: Path, repository: Path, wheel: Path
) -> None:
    host = tmp_path / "host"
    venv = host / "opt" / "flaskr-async"
    for folder in ("etc/systemd/system", "etc/nginx/sites-available", "etc/nginx/sites-enabled"):
        (host / folder).mkdir(parents=True)
    (host / "tmp").mkdir()
    (tmp_path / "home").mkdir()
    values = {
        **shared_values(tmp_path),
        "host": lambda: str(host),
        "pip": lambda: lent_pip(venv),
        "dependencies": lambda: lent_dependencies(venv),
        "root": lambda: str(repository),
        "wheel": lambda: str(wheel),
    }
    shell = Shell(host, base_env(tmp_path / "home"), values, host=host)
    try:
        skipped = walk(shell, "docs/deployment.md")
    finally:
        shell.stop_unit()
    print("Skipped:", *skipped, sep="\n  ")
    instance = host / "opt" / "flaskr-async" / "var" / "flaskr_async-instance"
    assert (instance / "flaskr.sqlite").is_file()
    assert len(list((host / "var" / "backups" / "flaskr-async").glob("*.sqlite"))) == 2
