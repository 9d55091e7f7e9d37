"""make run's --plain-http: no Secure cookie only where neither config.py nor the environment
sets it."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from quart import Quart

from flaskr_async import create_app
from flaskr_async.serving import command as entry_point
from flaskr_async.serving import plain_http
from flaskr_async.serving.plain_http import LINE
from flaskr_async.serving.plain_http import use_plain_http_cookies
from tests.servers import TLS
from tests.servers import free_port
from tests.servers import running
from tests.servers import server_env
from tests.serving.test_serve import terminate_once_serving

ON, OFF = True, False

# (instance/config.py's line, FLASKR_SESSION_COOKIE_SECURE, --plain-http) -> Secure, line logged
TABLE = [
    (None, None, OFF, True, False),  # anything else serving: the default, Secure
    (None, None, ON, False, True),  # make run, nothing set: not Secure, and it says so
    ("SESSION_COOKIE_SECURE = True", None, OFF, True, False),
    ("SESSION_COOKIE_SECURE = True", None, ON, True, False),  # the operator's True stands
    ("SESSION_COOKIE_SECURE = False", None, OFF, False, False),
    ("SESSION_COOKIE_SECURE = False", None, ON, False, False),
    ("SESSION_COOKIE_SECURE = None", None, ON, True, False),  # set, to the default: stands
    (None, "true", OFF, True, False),
    (None, "true", ON, True, False),
    (None, "false", OFF, False, False),
    (None, "false", ON, False, False),
    ("SESSION_COOKIE_SECURE = False", "true", ON, True, False),  # the environment wins
    ("SESSION_COOKIE_SECURE = True", "false", ON, False, False),
    # SameSite=None needs Secure: kept, and start-up is not refused over a default.
    ('SESSION_COOKIE_SAMESITE = "None"', None, ON, True, False),
]


@pytest.fixture
def instance_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the app's instance folder in tmp_path, its config.py the test's to write."""
    path = tmp_path / "instance"
    path.mkdir()
    monkeypatch.setattr(Quart, "auto_find_instance_path", lambda self: str(path))
    for name, value in server_env(tmp_path / "flaskr.sqlite").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FLASKR_SESSION_COOKIE_SECURE")
    return path


@pytest.mark.parametrize(("config_line", "environment", "option", "secure", "said"), TABLE)
def test_plain_http_applies_only_where_nothing_sets_secure(
    instance_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config_line: str | None,
    environment: str | None,
    option: bool,
    secure: bool,
    said: bool,
) -> None:
    if config_line is not None:
        (instance_path / "config.py").write_text(config_line + "\n")
    if environment is not None:
        monkeypatch.setenv("FLASKR_SESSION_COOKIE_SECURE", environment)
    app = create_app()
    turned_off = use_plain_http_cookies(app) if option else False
    assert app.config["SESSION_COOKIE_SECURE"] is secure
    assert turned_off is said


@pytest.mark.parametrize(("environment", "secure"), [(None, False), ("true", True)])
def test_main_with_plain_http_logs_the_default_once_it_is_used(
    instance_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    environment: str | None,
    secure: bool,
) -> None:
    if environment is not None:
        monkeypatch.setenv("FLASKR_SESSION_COOKIE_SECURE", environment)
    cookies: list[str] = []

    def visit(url: str) -> None:
        cookies.append(httpx.get(url + "/auth/login", verify=TLS).headers["set-cookie"])

    port = free_port()
    thread = terminate_once_serving(port, visit)
    assert entry_point.main(["serve", "--bind", f"127.0.0.1:{port}", "--plain-http"]) == 0
    thread.join()
    assert ("; Secure" in cookies[0]) is secure
    assert caplog.text.count(LINE) == (0 if secure else 1)


def test_workers_build_the_app_with_the_same_default(instance_path: Path) -> None:
    assert plain_http.create_app().config["SESSION_COOKIE_SECURE"] is False


@pytest.mark.system
@pytest.mark.parametrize(
    ("environment", "options", "secure", "said"),
    [
        (None, ["--plain-http"], False, True),  # make run on a fresh clone
        ("true", ["--plain-http"], True, False),  # the operator's choice, not overridden
        (None, [], True, False),  # the serve command as the systemd unit runs it
    ],
)
def test_serve_command_sets_the_cookie_s_secure_flag_and_says_why(
    tmp_path: Path, environment: str | None, options: list[str], secure: bool, said: bool
) -> None:
    port = free_port()
    env = server_env(tmp_path / "flaskr.sqlite")
    del env["FLASKR_SESSION_COOKIE_SECURE"]
    if environment is not None:
        env["FLASKR_SESSION_COOKIE_SECURE"] = environment
    command = [sys.executable, "-m", "flaskr_async", "serve", "--bind", f"127.0.0.1:{port}"]
    with running([*command, *options], env, port) as server:
        cookie = httpx.get(server.url + "/auth/login", verify=TLS).headers["set-cookie"]
        assert server.stop() == 0
        output = server.output()
    assert ("; Secure" in cookie) is secure
    assert output.count(LINE) == (1 if said else 0)
