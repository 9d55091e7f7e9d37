"""One identity on every Python: each supported Python's canonical names and passwords agree.

``make test`` runs this in the oldest Python's suite, against the virtualenvs of the others
(TEST_OTHER_PYTHONS, from noxfile.py): one Python's results are checked against
another's, over every assigned character and random texts, and through real servers.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from flaskr_async.identity import NotAllowed
from flaskr_async.identity import canonical_password
from flaskr_async.identity import canonical_username
from tests.servers import ROOT
from tests.servers import Server
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env
from tests.visitors import Visitor

pytestmark = [pytest.mark.system, pytest.mark.sqlite_only]


def other_pythons() -> list[str]:
    """Return the other supported Pythons' interpreters, or skip when this run has none."""
    listed = [path for path in os.environ.get("TEST_OTHER_PYTHONS", "").split(os.pathsep)]
    found = [path for path in listed if path and Path(path).exists()]
    if not found:
        pytest.skip("run by make test, in the oldest Python's suite, against the others")
    assert found == listed, f"a supported Python's virtualenv is missing: {listed}"
    return found


def probe(python: str, *arguments: str) -> Any:
    """Run tests/identity_probe.py under one Python; return its JSON."""
    result = subprocess.run(
        [python, "-m", "tests.identity_probe", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout)


def probe_all(pythons: list[str], seed: str) -> list[Any]:
    """Run the probe under every Python at once; return their JSON in the same order."""
    processes = [
        subprocess.Popen(
            [python, "-m", "tests.identity_probe", seed],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for python in pythons
    ]
    results = []
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        results.append(json.loads(output))
    return results


def test_every_python_makes_the_same_canonical_forms() -> None:
    pythons = [sys.executable, *other_pythons()]
    seed = str(random.SystemRandom().randrange(2**32))
    results = probe_all(pythons, seed)
    mine = results[0]
    for python, theirs in zip(pythons[1:], results[1:], strict=True):
        differing = [
            block
            for block, (a, b) in enumerate(zip(mine["blocks"], theirs["blocks"], strict=True))
            if a != b
        ]
        # Name the characters, not just the blocks, when they differ.
        details = {}
        for block in differing[:3]:
            here, there = (
                probe(sys.executable, "--block", str(block)),
                probe(python, "--block", str(block)),
            )
            details.update(
                {cp: (here[cp], there.get(cp)) for cp in here if here[cp] != there.get(cp)}
            )
        assert not differing, f"{python} differs from {sys.version} at {details}"
        texts = {text: (forms, theirs["texts"][text]) for text, forms in mine["texts"].items()}
        assert {t: f for t, f in texts.items() if f[0] != f[1]} == {}, f"seed {seed}, {python}"


def accepted(pools: list[list[str]], rng: random.Random, length: int, check: Any) -> str:
    """Draw texts (each character from a pool drawn first) until this Python accepts one."""
    while True:
        text = "".join(rng.choice(rng.choice(pools)) for _ in range(length))
        try:
            check(text)
        except NotAllowed:
            continue
        return text


def twin_of(name: str) -> str:
    """Return another spelling of a name that is the same account: case, width or form."""
    for spelling in (name.upper(), name.swapcase(), unicodedata.normalize("NFD", name)):
        if spelling != name and spelling.casefold() == name.casefold():
            return spelling
    return " " + name + "\u3000"


@pytest.fixture
def hosts(database_url: str) -> Iterator[list[Server]]:
    """Serve one database from a host on each supported Python."""
    pythons = [sys.executable, *other_pythons()]
    with ExitStack() as stack:
        servers = []
        for python in pythons:
            port = free_port()
            command = hypercorn_command(port, python=python)
            servers.append(stack.enter_context(running(command, server_env(database_url), port)))
        yield servers


def test_names_and_passwords_registered_on_each_python_log_in_on_every_other(
    hosts: list[Server],
) -> None:
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    # Cased letters as often as all others (CJK would be most of a plain draw), from the
    # Unicode this Python knows: what a newer one accepts, an older one must accept too.
    letters = [chr(cp) for cp in range(0x40000) if unicodedata.category(chr(cp)).startswith("L")]
    cased = [letter for letter in letters if unicodedata.category(letter) in ("Lu", "Ll", "Lt")]
    printable = [chr(cp) for cp in range(0x20, 0x40000) if chr(cp).isprintable()]
    accounts = [
        (
            accepted([cased, letters], rng, 4, canonical_username),
            accepted([printable], rng, 12, canonical_password),
        )
        for _ in hosts
    ]
    visitor = Visitor()
    try:
        for host, (name, password) in zip(hosts, accounts, strict=True):
            registered = visitor.submit(
                host.url + "/auth/register", {"username": name, "password": password}
            )
            assert registered.status_code == 302, (seed, name, registered.text[-500:])
        for host in hosts:
            for name, password in accounts:
                form = {"username": twin_of(name), "password": password}
                response = visitor.submit(host.url + "/auth/login", form)
                assert response.status_code == 302, (seed, host.url, name, password)
                visitor.submit(host.url + "/", {}, action=host.url + "/auth/logout")
    finally:
        visitor.close()
