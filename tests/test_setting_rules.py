"""Settings that are each valid but cannot work together are refused at creation, in one line.

One row per rule of flaskr_async/setting_rules.py: a combination it refuses, through
``create_app``'s test_config and through the environment, and neighbours that still work.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flaskr_async import create_app
from flaskr_async.setting_rules import RULES
from flaskr_async.setting_rules import Rule
from flaskr_async.settings import SETTINGS
from flaskr_async.settings import InvalidSetting
from tests.servers import ROOT
from tests.servers import TEST_SECRET_KEY
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import refuse_unless_system
from tests.servers import server_env
from tests.servers import start

SAMESITE_SECURE, SAMESITE_CSRF, STREAMS_SHARE = RULES

# (rule, settings as the environment writes them, the values the message shows in order,
#  neighbouring settings that work)
CASES = [
    pytest.param(
        SAMESITE_SECURE,
        {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": "false"},
        ["'None'", "False"],
        [
            {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": "true"},
            {"SESSION_COOKIE_SAMESITE": "None"},  # null: Secure, outside debug and testing
            {"SESSION_COOKIE_SAMESITE": "Lax", "SESSION_COOKIE_SECURE": "false"},
            {"SESSION_COOKIE_SAMESITE": "Strict", "SESSION_COOKIE_SECURE": "false"},
        ],
        id="SameSite=None, not Secure",
    ),
    pytest.param(
        SAMESITE_SECURE,
        {"SESSION_COOKIE_SAMESITE": "none", "DEBUG": "true"},
        ["'none'", "None"],
        [
            {"SESSION_COOKIE_SAMESITE": "none", "DEBUG": "true", "SESSION_COOKIE_SECURE": "true"},
            {"SESSION_COOKIE_SAMESITE": "Lax", "DEBUG": "true"},
        ],
        id="SameSite=None, null Secure when debugging",
    ),
    pytest.param(
        SAMESITE_SECURE,
        {"SESSION_COOKIE_SAMESITE": "None", "TESTING": "true"},
        ["'None'", "None"],
        [{"SESSION_COOKIE_SAMESITE": "None", "TESTING": "true", "SESSION_COOKIE_SECURE": "true"}],
        id="SameSite=None, null Secure when testing",
    ),
    pytest.param(
        SAMESITE_CSRF,
        {"SESSION_COOKIE_SAMESITE": "None", "WTF_CSRF_ENABLED": "false"},
        ["'None'", "False"],
        [
            {"SESSION_COOKIE_SAMESITE": "None", "WTF_CSRF_ENABLED": "true"},
            {"SESSION_COOKIE_SAMESITE": "Lax", "WTF_CSRF_ENABLED": "false"},  # as the tests run
        ],
        id="SameSite=None, no CSRF tokens",
    ),
    pytest.param(
        STREAMS_SHARE,
        {"LIVE_MAX_STREAMS": "4"},  # the share: its default, 8
        ["8", "4"],
        [
            {"LIVE_MAX_STREAMS": "4", "LIVE_STREAMS_PER_CLIENT": "3"},
            {"LIVE_MAX_STREAMS": "9"},
            {"LIVE_MAX_STREAMS": "1"},  # one stream in all: no share to keep
            {"LIVE_MAX_STREAMS": "1001", "LIVE_STREAMS_PER_CLIENT": "1000"},
        ],
        id="a client's share of streams, not below the total",
    ),
    pytest.param(
        STREAMS_SHARE,
        {"LIVE_MAX_STREAMS": "2", "LIVE_STREAMS_PER_CLIENT": "2"},
        ["2", "2"],
        [{"LIVE_MAX_STREAMS": "2", "LIVE_STREAMS_PER_CLIENT": "1"}],
        id="a client's share of streams, equal to the total",
    ),
]


def value_of(name: str, text: str) -> Any:
    """Return the value an environment variable's text gives a setting."""
    return text if SETTINGS[name].text else json.loads(text)


def config_of(settings: dict[str, str]) -> dict[str, Any]:
    """Return the settings as test_config holds them."""
    return {name: value_of(name, text) for name, text in settings.items()}


def message(rule: Rule, shown: list[str], sources: set[str]) -> str:
    """Return the one line a rule refuses with, each value said with where it came from."""
    stated = [
        f"{name} = {value}" + (f" (from FLASKR_{name})" if name in sources else "")
        for name, value in zip(rule.reads, shown, strict=True)
    ]
    return f"{' with '.join(stated)} is invalid: {rule.why}: {rule.fix}"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test with no FLASKR_ variable set by the caller's shell."""
    for name in [name for name in os.environ if name.startswith("FLASKR_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def base(tmp_path: Path) -> dict[str, Any]:
    """Return valid serving settings (not debug, not testing) of a test app."""
    return {"SECRET_KEY": TEST_SECRET_KEY, "DATABASE": str(tmp_path / "flaskr.sqlite")}


def test_every_rule_has_a_row() -> None:
    assert {case.values[0] for case in CASES} == set(RULES)


@pytest.mark.parametrize(("rule", "settings", "shown", "neighbours"), CASES)
def test_a_conflict_is_refused_and_its_neighbours_work(
    base: dict[str, Any],
    rule: Rule,
    settings: dict[str, str],
    shown: list[str],
    neighbours: list[dict[str, str]],
) -> None:
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, **config_of(settings)})
    assert str(error.value) == message(rule, shown, sources=set())
    for neighbour in neighbours:
        create_app({**base, **config_of(neighbour)})


@pytest.mark.parametrize(("rule", "settings", "shown", "neighbours"), CASES)
def test_a_conflict_is_refused_from_the_environment(
    base: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    rule: Rule,
    settings: dict[str, str],
    shown: list[str],
    neighbours: list[dict[str, str]],
) -> None:
    for name, text in settings.items():
        monkeypatch.setenv(f"FLASKR_{name}", text)
    with pytest.raises(InvalidSetting) as error:
        create_app(base)
    assert str(error.value) == message(rule, shown, sources=set(settings))
    for name in settings:
        monkeypatch.delenv(f"FLASKR_{name}")
    for neighbour in neighbours:
        with monkeypatch.context() as environment:
            for name, text in neighbour.items():
                environment.setenv(f"FLASKR_{name}", text)
            create_app(base)


def test_a_conflict_is_named_with_the_other_problems(base: dict[str, Any]) -> None:
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, "POSTS_PER_PAGE": 0, "LIVE_MAX_STREAMS": 4})
    assert str(error.value) == (
        "2 settings are invalid: POSTS_PER_PAGE = 0 is invalid: must be a positive integer"
        f" (at most 2147483647); {message(STREAMS_SHARE, ['8', '4'], sources=set())}"
    )


def test_a_setting_refused_alone_is_not_judged_with_others(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own problem is the one to fix first: its value says nothing about the pair.
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, "SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": 0})
    assert str(error.value).startswith("SESSION_COOKIE_SECURE = 0 is invalid: must be None")
    # Not JSON in the environment: the setting keeps its default (null), which while
    # debugging would be a conflict the operator never wrote.
    monkeypatch.setenv("FLASKR_SESSION_COOKIE_SECURE", "False")
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, "SESSION_COOKIE_SAMESITE": "None", "DEBUG": True})
    assert str(error.value).startswith("FLASKR_SESSION_COOKIE_SECURE = 'False' is invalid")
    assert " with " not in str(error.value)


def documented_settings(path: Path) -> dict[str, str]:
    """Return the FLASKR_ settings a document shows, as the environment would hold them."""
    found = re.findall(r"FLASKR_([A-Z_]+)=('[^']*'|[^\s`)]+)", path.read_text())
    return {name: text.strip("'") for name, text in found}


DOCUMENTS = ["README.md", "docs/deployment.md", "deploy/flaskr-async.service", "deploy/nginx.conf"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_documented_settings_work_together(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch, document: str
) -> None:
    settings = documented_settings(ROOT / document)
    assert settings or document == "deploy/nginx.conf"
    for name, text in settings.items():
        monkeypatch.setenv(f"FLASKR_{name}", text)
    create_app(base)


def test_every_example_works_with_the_others(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, setting in SETTINGS.items():
        monkeypatch.setenv(f"FLASKR_{name}", setting.environment_example)
    create_app(base)


@pytest.mark.system
def test_hypercorn_stops_with_the_one_line_on_stderr(tmp_path: Path) -> None:
    """Issue 26: SameSite=None without Secure served, and no form passed its CSRF check."""
    env = server_env(tmp_path / "flaskr.sqlite", SESSION_COOKIE_SAMESITE="None")
    line = message(SAMESITE_SECURE, ["'None'", "False"], set(SAMESITE_SECURE.reads))
    refuse_unless_system("hypercorn")
    port = free_port()
    hypercorn = subprocess.run(
        hypercorn_command(port), cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert (hypercorn.stdout, hypercorn.stderr) == ("", f"Start-up failed: {line}\n")
    # hypercorn 0.18 drops its worker's exit status (pgjones/hypercorn#269); the serve command,
    # the README's way to run the app, exits non-zero with the same line.
    assert hypercorn.returncode == 0
    serve = [sys.executable, "-m", "flaskr_async", "serve", "--bind", f"127.0.0.1:{port}"]
    server = start(serve, env, port)
    assert server.process.wait(30) == 1
    assert server.output().strip().splitlines() == [f"Start-up failed: {line}"]
