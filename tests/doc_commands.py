"""The shell commands of README.md and docs/deployment.md, and how the tests run each one.

``COMMANDS`` classifies every command of the two documents' fenced shell blocks, by its exact
text: run it (``Run``), serve with it (``Serve``), or skip it, saying why (``Skip``). A fenced
Python block is one entry, known by ``python: `` and its first line, and runs whole
(``Script``).
tests/test_docs.py fails when a document has a command the table does not know, or the table
one the documents no longer have; tests/system/test_doc_commands.py runs them in reading order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The documents whose commands run, in the order a newcomer reads them.
DOCUMENTS = ("README.md", "docs/deployment.md")
BLOCK = re.compile(r"^( *)```(sh|bash|console|shell|python)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
# A comment: a `#` at the start of a line or after white space (`sed '/^# HTTPS/'` is none).
COMMENT = re.compile(r"(?:^|\s)#(?:\s.*)?$")


@dataclass(frozen=True)
class Run:
    """Run it in the test's shell: exit with one of ``statuses``, print ``expect``.

    ``instead`` replaces the command where the test machine needs another (the reason beside
    it); ``keeps`` names a file it must leave as it was. ``export`` and ``cd`` change the
    shell's state for the commands after them, and a bare ``NAME=value`` is a line of the
    service's environment file.
    """

    instead: str | None = None
    expect: str = ""
    statuses: tuple[int, ...] = (0,)
    keeps: str = ""


@dataclass(frozen=True)
class Serve:
    """Start it, check that it answers ``/hello``, then stop it (``stays``: at the next one)."""

    instead: str | None = None
    stays: bool = False


@dataclass(frozen=True)
class Skip:
    """Not run here, and why."""

    why: str


@dataclass(frozen=True)
class Script:
    """Run the Python block with the test's interpreter while ``serve`` (a command) serves.

    It must exit 0 and print ``expect``.
    """

    serve: str
    expect: str


Step = Run | Serve | Skip | Script

# Placeholders an ``instead`` may use (tests/system/test_doc_commands.py fills them): {python}
# the test's interpreter, {pip} and {dependencies} what lend its pip, then its packages with
# their quart and hypercorn commands, to the virtualenv /opt/flaskr-async, {wheel} the wheel
# built from a fresh clone of {root}, the tree as it is (a git repository), {port} a free port,
# {postgresql} a new database on the tests' PostgreSQL, {key} a strong secret key, {unit} the
# ExecStart of deploy/flaskr-async.service with its Environment= and WorkingDirectory=.
RECURSES = "the suite itself, which includes this test: it would run itself again"
SYSTEMD = "drives the host's systemd; the test runs the unit's ExecStart instead (the Serve above)"
NO_DOMAIN = (
    "needs the public name and nginx with its certificate; tests/system/test_nginx.py runs"
    " deploy/nginx.conf"
)

COMMANDS: dict[str, Step] = {
    # README.md
    "make run": Serve(),
    "make test": Skip(RECURSES),
    "make test PYTHONS=3.13": Skip(RECURSES),
    ".venv/bin/nox -s tests-3.12": Skip(RECURSES),
    ".venv/bin/nox -s tests-3.13 -- tests/db/test_db.py -x": Skip(
        "fills a nox virtualenv from PyPI (about a minute), then runs part of this suite"
    ),
    ".venv/bin/nox -l": Run(expect="tests-3.11"),
    "make lock": Skip("re-resolves every Python's lock from PyPI and rewrites requirements/"),
    ".venv/bin/quart --app flaskr_async init-db": Run(expect="Initialized the database."),
    ".venv/bin/quart --app flaskr_async init-db --if-missing": Run(),
    ".venv/bin/quart --app flaskr_async backup ~/flaskr-$(date +%F-%H%M%S).sqlite": Run(
        expect="Backed up"
    ),
    # Port 5000 may be another test's; the option is the command's own.
    ".venv/bin/quart --app flaskr_async run --debug": Serve(
        instead=".venv/bin/quart --app flaskr_async run --debug --port {port}"
    ),
    # hypercorn's default, 127.0.0.1:8000, may be another test's.
    ".venv/bin/hypercorn asgi:app": Serve(
        instead=".venv/bin/hypercorn --bind 127.0.0.1:{port} asgi:app"
    ),
    "make lint": Skip(
        "ruff and mypy over the whole tree (half a minute or more): make test runs the same"
        " (nox's lint session, mypy in each tests session)"
    ),
    "make settings-table": Run(keeps="README.md"),
    # Scripting against the server: httpx is the test's.
    "python: import re": Script(serve="make run", expect="True\n"),
    # Scaling out: a database of the tests' PostgreSQL instead of db.internal.
    "export FLASKR_DATABASE=postgresql://flaskr:secret@db.internal:5432/flaskr": Run(
        instead="export FLASKR_DATABASE={postgresql}"
    ),
    "export FLASKR_SECRET_KEY=...same on every host...": Run(
        instead="export FLASKR_SECRET_KEY={key}"
    ),
    ".venv/bin/python -m flaskr_async serve --config hypercorn.toml": Serve(),
    # docs/deployment.md: a host in a folder (/opt, /etc, /var, /tmp/flaskr-build inside it),
    # as the test's user (runuser -u flaskr and -o flaskr -g flaskr dropped)
    "apt-get install python3 python3-venv python3-build git": Skip(
        "installs Debian packages as root on the host"
    ),
    "rm -rf /tmp/flaskr-build": Run(),
    "git clone /path/to/flaskr-async /tmp/flaskr-build": Run(),
    # The wheel the run built once, as the guide does (tests/system/conftest.py): python3 -m
    # build fetches setuptools into a virtualenv of its own, 5-15 s a build.
    "(cd /tmp/flaskr-build && /usr/bin/python3 -m build --wheel)": Run(
        instead="mkdir /tmp/flaskr-build/dist && cp {wheel} /tmp/flaskr-build/dist/"
    ),
    "useradd --system --user-group --home-dir /nonexistent --no-create-home --shell"
    " /usr/sbin/nologin flaskr": Skip("adds a system user to the host; the test runs as itself"),
    "install -d /etc/flaskr-async": Run(),
    # pip is lent below ({pip}): ensurepip alone takes 5-8 s.
    "/usr/bin/python3 -m venv /opt/flaskr-async": Run(
        instead="/usr/bin/python3 -m venv --without-pip /opt/flaskr-async"
    ),
    # The dependencies come from the test's own virtualenv, not PyPI (minutes).
    "/opt/flaskr-async/bin/pip install /tmp/flaskr-build/dist/flaskr_async-*.whl": Run(
        instead="{pip} && /opt/flaskr-async/bin/pip install --quiet --no-deps"
        " /tmp/flaskr-build/dist/flaskr_async-*.whl && {dependencies}"
    ),
    "/opt/flaskr-async/bin/pip show flaskr-async | head -2": Run(expect="Name: flaskr-async"),
    "install -d -o flaskr -g flaskr -m 700 /opt/flaskr-async/var/flaskr_async-instance": Run(),
    "runuser -u flaskr -- /opt/flaskr-async/bin/python -c 'from flaskr_async import create_app;"
    " print(create_app().instance_path)'": Run(
        expect="/opt/flaskr-async/var/flaskr_async-instance\n"
    ),
    "cd /opt/flaskr-async/var/flaskr_async-instance": Run(),
    "(umask 077; /opt/flaskr-async/bin/python -c 'import secrets; print(f\"SECRET_KEY ="
    " {secrets.token_hex(32)!r}\")' >> config.py)": Run(),
    "chown flaskr:flaskr config.py": Skip("no flaskr user here: the file is the test user's"),
    "cd /": Run(),
    # The same setting in config.py, the other way the guide offers: the env file's line runs.
    'python: TRUSTED_HOSTS = ["example.org", "localhost", "127.0.0.1", "[::1]"]': Skip(
        "a line of config.py, the alternative to the environment file's line below, which runs"
    ),
    'FLASKR_TRUSTED_HOSTS=\'["example.org", "localhost", "127.0.0.1", "[::1]"]\'': Run(),
    "runuser -u flaskr -- /opt/flaskr-async/bin/quart --app flaskr_async init-db --if-missing": (
        Run()
    ),
    "install -m 644 /path/to/flaskr-async/hypercorn.toml /etc/flaskr-async/hypercorn.toml": Run(),
    "cp /path/to/flaskr-async/deploy/flaskr-async.service /etc/systemd/system/": Run(),
    "systemd-analyze verify /etc/systemd/system/flaskr-async.service": Skip(
        "checks the unit against the host: the flaskr user, /opt/flaskr-async/bin/python"
    ),
    "systemctl daemon-reload": Skip(SYSTEMD),
    "systemctl enable --now flaskr-async": Serve(instead="{unit}", stays=True),
    "systemctl status flaskr-async": Skip(SYSTEMD),
    "apt-get install nginx certbot": Skip("installs Debian packages as root on the host"),
    "sed '/^# HTTPS/,$d' /path/to/flaskr-async/deploy/nginx.conf"
    " | sed 's/example\\.org/your.domain/g' > /etc/nginx/sites-available/flaskr-async": Run(),
    "ln -s ../sites-available/flaskr-async /etc/nginx/sites-enabled/": Run(),
    "rm -f /etc/nginx/sites-enabled/default": Run(),
    "install -d /var/www/letsencrypt": Run(),
    "nginx -t && systemctl reload nginx": Skip(
        "the host's nginx and systemd; tests/system/test_nginx.py runs deploy/nginx.conf in an"
        " nginx of its own"
    ),
    "certbot certonly --webroot -w /var/www/letsencrypt -d your.domain --deploy-hook"
    " 'systemctl reload nginx'": Skip("needs a public name and Let's Encrypt"),
    "cp /path/to/flaskr-async/deploy/nginx.conf /etc/nginx/sites-available/flaskr-async": Run(),
    "sed -i 's/example\\.org/your.domain/g' /etc/nginx/sites-available/flaskr-async": Run(),
    "certbot renew --dry-run": Skip("needs a public name and Let's Encrypt"),
    "curl -s http://127.0.0.1:8000/hello": Run(expect="Hello, World!"),
    "curl -sI http://example.org/hello": Skip(NO_DOMAIN),
    "curl -s https://example.org/hello": Skip(NO_DOMAIN),
    "curl -s -H 'Host: other.example' http://127.0.0.1:8000/hello": Run(expect="400"),
    "journalctl -u flaskr-async -n 20": Skip("the host's journal, where systemd sends the output"),
    "install -d -o flaskr -g flaskr -m 700 /var/backups/flaskr-async": Run(),
    "runuser -u flaskr -- /opt/flaskr-async/bin/quart --app flaskr_async backup"
    " /var/backups/flaskr-async/flaskr-$(date +%F-%H%M%S).sqlite": Run(expect="Backed up"),
    "runuser -u flaskr -- /opt/flaskr-async/bin/quart --app flaskr_async backup"
    " /var/backups/flaskr-async/before-upgrade-$(date +%F-%H%M%S).sqlite": Run(expect="Backed up"),
    "/opt/flaskr-async/bin/pip show flaskr-async | grep Version": Run(expect="Version: 1."),
    # The same wheel again, its dependencies still the test's: pip says what the guide quotes.
    "/opt/flaskr-async/bin/pip install --upgrade /tmp/flaskr-build/dist/flaskr_async-*.whl": Run(
        instead="/opt/flaskr-async/bin/pip install --upgrade --no-deps"
        " /tmp/flaskr-build/dist/flaskr_async-*.whl",
        expect="flaskr-async is already installed with the same version as the provided wheel",
    ),
    # diff exits 1 when the files differ, which is what the reader wants to see.
    "diff /tmp/flaskr-build/hypercorn.toml /etc/flaskr-async/hypercorn.toml": Run(statuses=(0, 1)),
    "diff /tmp/flaskr-build/deploy/flaskr-async.service /etc/systemd/system/flaskr-async.service": (
        Run(statuses=(0, 1))
    ),
    "diff /tmp/flaskr-build/deploy/nginx.conf /etc/nginx/sites-available/flaskr-async": Run(
        statuses=(0, 1)
    ),
    "systemctl restart flaskr-async": Serve(instead="{unit}", stays=True),
    "install -o flaskr -g flaskr -m 600 /path/to/flaskr/instance/flaskr.sqlite"
    " /var/backups/flaskr-async/flaskr-before-move.sqlite": Skip(
        "copies Flask's own Flaskr database, which this project does not ship;"
        " tests/db/test_migrations.py upgrades one"
    ),
}


def blocks_of(text: str) -> list[tuple[str, str]]:
    """Return (name in COMMANDS, text to run) for each command and Python block, in order.

    A shell command is its own name, without comments: a line ending in a backslash goes on
    with the next, and white space runs are one space. A Python block is named by its first line.
    """
    found = []
    for block in BLOCK.finditer(text):
        if block.group(2) == "python":
            code = block.group(3)
            found.append((f"python: {code.splitlines()[0]}", code))
            continue
        joined = re.sub(r"\\\n", " ", block.group(3))
        for line in joined.splitlines():
            command = " ".join(COMMENT.sub("", line).split())
            if command:
                found.append((command, command))
    return found


def commands_of(text: str) -> list[str]:
    """Return the names of a Markdown text's commands and Python blocks, in order."""
    return [name for name, _ in blocks_of(text)]


def documented_commands() -> list[tuple[str, str]]:
    """Return (document, command) for every command of the documents, in reading order."""
    return [
        (document, command)
        for document in DOCUMENTS
        for command in commands_of((ROOT / document).read_text())
    ]
