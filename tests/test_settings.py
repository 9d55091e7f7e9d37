"""Settings are input: every one is checked when the app is created, from any source.

The keys are the exception: any key builds an app (Flaskr's "dev" too), and a weak one is
refused when the app starts to serve, outside debug and testing (check_serving).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from flaskr_async import check_serving
from flaskr_async import create_app
from flaskr_async.forms import LARGEST_FORM_BYTES
from flaskr_async.settings import CONFIG_FILE
from flaskr_async.settings import DEFAULTS
from flaskr_async.settings import MAX_INT
from flaskr_async.settings import SETTINGS
from flaskr_async.settings import UNSET
from flaskr_async.settings import InvalidSetting
from flaskr_async.settings import check_serving as check_config_for_serving
from flaskr_async.settings import markdown_table
from tests.servers import ROOT
from tests.servers import TEST_SECRET_KEY
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import server_env
from tests.servers import start

OLD_KEY = "an-old-secret-key-still-accepted-for-a-while"
POSITIVE = ([1, 20, MAX_INT], [0, -1, True, False, 1.5, 20.0, "20", None, MAX_INT + 1])
SECONDS = ([0.01, 1, 15.0, 3600], [0, -1.5, True, "15", float("nan"), float("inf"), 3601, None])
BOOLEAN = ([True, False], ["true", "False", 0, 1, None])

# Every setting: (values accepted, values refused) when serving outside debug and testing.
CASES: dict[str, tuple[list[Any], list[Any]]] = {
    "SECRET_KEY": (
        [TEST_SECRET_KEY, b"k" * 32, "é" * 16],
        ["dev", "x" * 31, b"x" * 31, "é" * 15, "", None, 12345678901234567890, [TEST_SECRET_KEY]],
    ),
    "SECRET_KEY_FALLBACKS": (
        [None, [], [OLD_KEY], (OLD_KEY, TEST_SECRET_KEY), [b"k" * 32]],
        # A bare string: Quart would make every character a key, and "o" would sign cookies.
        [OLD_KEY, ["o"], [OLD_KEY, "x" * 31], ["dev"], [None], {"key": OLD_KEY}, 5],
    ),
    "DATABASE": (
        [
            "/var/lib/flaskr/flaskr.sqlite",
            "flaskr.sqlite",
            "sqlite:///relative.sqlite",
            "sqlite:////var/lib/flaskr/flaskr.sqlite",
            "postgresql://flaskr:secret@db.internal:5432/flaskr",
            "postgres://db.internal/flaskr",
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            Path("/var/lib/flaskr/flaskr.sqlite"),
        ],
        [
            "postgresql:/x",
            "postgresql:db.internal/flaskr",
            "mysql://flaskr@db.internal/flaskr",
            "sqlite://flaskr.sqlite",
            "sqlite:///",
            "file:flaskr.sqlite",
            "",
            " ",
            ":memory:",
            "sqlite:///:memory:",
            "flaskr\0.sqlite",
            None,
            5,
        ],
    ),
    "DATABASE_POOL_SIZE": ([None, 1, 8], [0, -1, True, 2.0, "4", MAX_INT + 1]),
    "SQLITE_BUSY_TIMEOUT": (
        [0.5, 5, 5.0, 86400],
        [0, -1, True, "5", float("nan"), float("inf"), 86401, None],
    ),
    "SQLITE_SYNCHRONOUS": (
        ["NORMAL", "full", "Off", "EXTRA"],
        ["SOMETIMES", "", "NORMAL; DROP TABLE post", 1, None],
    ),
    "POSTS_PER_PAGE": POSITIVE,
    # At least what the largest form may send (tests/middleware/test_body_limits.py).
    "MAX_CONTENT_LENGTH": (
        [LARGEST_FORM_BYTES, 1024 * 1024, MAX_INT],
        [LARGEST_FORM_BYTES - 1, 100, 0, -1, True, 1.5, "1048576", None, MAX_INT + 1],
    ),
    "PASSWORD_HASH_CONCURRENCY": POSITIVE,
    "LOGIN_FAILURE_WINDOW": POSITIVE,
    "LOGIN_MAX_FAILURES_PER_USERNAME": POSITIVE,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": POSITIVE,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": POSITIVE,
    "LOGIN_MAX_FAILURES_PER_DEVICE": POSITIVE,
    # The live index: each bound at both ends (a keep-alive of 1e-6 s was a flood).
    "LIVE_MAX_STREAMS": ([1, 1000, 100_000], [0, -1, True, 1.0, "1000", 100_001, None]),
    # 1000 needs more than the default 1000 streams in all (tests/test_setting_rules.py).
    "LIVE_STREAMS_PER_CLIENT": ([1, 8, 999], [0, True, 8.0, 1001, None]),
    "LIVE_QUEUE_SIZE": ([1, 64, 10_000], [0, True, 10_001, None]),
    "LIVE_HISTORY": ([1, 1000, 100_000], [0, True, 100_001, None]),
    "LIVE_KEEPALIVE_INTERVAL": (
        [1, 15.0, 300],
        [1e-6, 0.5, 0, -1, True, "15", float("nan"), float("inf"), 301, None],
    ),
    "LIVE_STREAM_LIFETIME": ([10, 600.0, 86400], [9.9, 0, True, float("nan"), 86401, None]),
    "LIVE_POLL_INTERVAL": (
        [0.01, 0.05, 60],
        [1e-6, 0.001, 0, True, float("nan"), float("inf"), 61, None],
    ),
    "SEND_TIMEOUT": ([1, 10.0, 600], [0.5, 0, -1, True, float("nan"), 601, None]),
    "PROXY_FIX_TRUSTED_HOPS": ([0, 1, 2], [-1, True, "1", 1.0, None]),
    "TRUSTED_HOSTS": (
        [
            None,
            ["example.org"],
            [".example.org", "LocalHost", "127.0.0.1", "[::1]", "a.org.", "my_app"],
        ],
        ["example.org", [], [""], ["a b"], [5], ["http://example.org/"], [None], ["a:80"]],
    ),
    "SESSION_IDLE_TIMEOUT": POSITIVE,
    "SESSION_COOKIE_SECURE": ([True, False, None], ["False", "true", 0, 1]),
    "SESSION_COOKIE_SAMESITE": (
        ["Lax", "Strict", "None", "lax"],
        ["", "Loose", "Lax; Secure", None],
    ),
    "SESSION_COOKIE_HTTPONLY": BOOLEAN,
    "SESSION_REFRESH_EACH_REQUEST": BOOLEAN,
    "PERMANENT_SESSION_LIFETIME": (
        [timedelta(days=14), 3600, MAX_INT],
        [0, -1, True, 3600.0, "14 days", None, timedelta(0), timedelta(seconds=-1)]
        + [timedelta(days=100_000), MAX_INT + 1],
    ),
    "WTF_CSRF_ENABLED": BOOLEAN,
    "WTF_CSRF_TIME_LIMIT": ([None, 3600], [0, -5, True, "3600", 1.5]),
    "PROPAGATE_EXCEPTIONS": ([None, True, False], ["no", 0]),
    "TESTING": BOOLEAN,
    "DEBUG": BOOLEAN,
}


def cases(accepted: bool, environment: bool = False) -> list[Any]:
    """Return one pytest param per (setting, value) of the table; environment: as text."""
    return [
        pytest.param(
            name,
            environment_text(name, value) if environment else value,
            id=f"{name}={value!r:.40}",
        )
        for name, (good, bad) in CASES.items()
        for value in (good if accepted else bad)
        if not environment or environment_text(name, value) is not None
    ]


def environment_text(name: str, value: Any) -> str | None:
    """Write a value as an environment variable would hold it; None if it cannot."""
    if SETTINGS[name].text:
        return value if isinstance(value, str) and "\0" not in value else None
    try:
        return json.dumps(value)
    except TypeError:  # bytes, timedelta, Path: config.py only
        return None


def expected(name: str, value: Any) -> Any:
    """Return what the config holds after create_app for a setting given this value."""
    if name == "SESSION_COOKIE_SECURE" and value is None:
        return True  # None: on, unless debugging or testing
    return value


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test with no FLASKR_ variable set by the caller's shell."""
    for name in [name for name in os.environ if name.startswith("FLASKR_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def base(tmp_path: Path) -> dict[str, Any]:
    """Return valid serving settings (not debug, not testing) of a test app."""
    return {"SECRET_KEY": TEST_SECRET_KEY, "DATABASE": str(tmp_path / "flaskr.sqlite")}


def test_every_default_and_every_setting_is_declared_and_tested() -> None:
    assert set(DEFAULTS) | {"SECRET_KEY", "DATABASE"} <= set(SETTINGS)
    assert set(CASES) == set(SETTINGS), (
        "each setting in SETTINGS (flaskr_async/settings.py) needs a row of CASES here"
    )


def test_the_defaults_pass(base: dict[str, Any]) -> None:
    app = create_app(base)
    for name, value in DEFAULTS.items():
        assert app.config[name] == expected(name, value)


@pytest.mark.parametrize("name", SETTINGS)
def test_each_declared_default_and_example_is_accepted(name: str) -> None:
    setting = SETTINGS[name]
    if setting.default is not UNSET:
        assert setting.accepts(setting.default)
    example = setting.environment_example
    assert setting.accepts(example if setting.text else json.loads(example))


def test_the_settings_table_of_the_readme_is_the_declared_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate it: python -c " + repr(
        "from flaskr_async import settings; print(settings.markdown_table())"
    )


def serving_app(config: dict[str, Any]) -> Quart:
    """Create the app and run the check its start-up runs, as serving it would."""
    app = create_app(config)
    check_serving(app)
    return app


@pytest.mark.parametrize(("name", "value"), cases(accepted=True))
def test_a_good_value_is_accepted(base: dict[str, Any], name: str, value: Any) -> None:
    assert (
        serving_app({**base, name: value}).config[name] == value or name == "SESSION_COOKIE_SECURE"
    )


@pytest.mark.parametrize(("name", "value"), cases(accepted=False))
def test_a_bad_value_is_refused(base: dict[str, Any], name: str, value: Any) -> None:
    with pytest.raises(InvalidSetting) as error:
        serving_app({**base, name: value})
    message = str(error.value)
    assert message.startswith(f"{name} = ")
    # The hints name the config.py of this app's instance folder (the clone's, in the tests).
    must_be = SETTINGS[name].requirement.replace(CONFIG_FILE, str(ROOT / "instance" / "config.py"))
    assert f" is invalid: must be {must_be}" in message
    if SETTINGS[name].secret and isinstance(value, str) and len(value) > 3:
        assert value not in message
        assert "<redacted, " in message


@pytest.mark.parametrize(("name", "text"), cases(accepted=True, environment=True))
def test_a_good_value_is_accepted_from_the_environment(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    monkeypatch.setenv(f"FLASKR_{name}", text)
    value = text if SETTINGS[name].text else json.loads(text)
    assert serving_app(base).config[name] == expected(name, value)


@pytest.mark.parametrize(("name", "text"), cases(accepted=False, environment=True))
def test_a_bad_value_is_refused_from_the_environment(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    monkeypatch.setenv(f"FLASKR_{name}", text)
    with pytest.raises(InvalidSetting, match=f"^{name} = .* \\(from FLASKR_{name}\\) is invalid"):
        serving_app(base)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("SESSION_COOKIE_SECURE", "False"),  # from_prefixed_env kept this truthy string
        ("SECRET_KEY_FALLBACKS", OLD_KEY),  # and this one, split into one key per character
        ("POSTS_PER_PAGE", "ten"),
        ("POSTS_PER_PAGE", ""),
        ("TRUSTED_HOSTS", "example.org"),
        ("DATABASE_POOL_SIZE", "None"),
        ("WTF_CSRF_ENABLED", "yes"),
    ],
)
def test_environment_text_that_is_not_json_is_refused(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    monkeypatch.setenv(f"FLASKR_{name}", text)
    with pytest.raises(InvalidSetting) as error:
        create_app(base)
    message = str(error.value)
    assert message.startswith(f"FLASKR_{name} = ")
    requirement = SETTINGS[name].requirement
    assert f"must be {requirement}, written as JSON, e.g. FLASKR_{name}='" in message
    if SETTINGS[name].secret:
        assert text not in message
        assert f"'<redacted, {len(text)} bytes>'" in message


PORT_FAULT = "a port (ports are ignored: the name matches any port)"
NOT_A_NAME = (
    'a host name has only letters, digits, ".", "-" and "_", or is a bracketed IPv6 address'
)
IP_FAULT = "can never match a Host: an IP address written otherwise than clients send it"
ASCII_FAULT = "letters outside ASCII (a Host is ASCII: browsers send punycode)"
# Entries no Host can match (middleware/boundary.py's HOST pattern, compared without the port,
# in lower case, "." adding subdomains): each is named, with how to write it.
UNMATCHABLE_HOSTS = {
    "localhost:15009": f"can never match a Host: {PORT_FAULT}; write 'localhost'",
    "127.0.0.1:8000": f"can never match a Host: {PORT_FAULT}; write '127.0.0.1'",
    "[::1]:8000": f"can never match a Host: {PORT_FAULT}; write '[::1]'",
    "::1": "can never match a Host: an IPv6 address without brackets (a Host writes it in"
    " brackets); write '[::1]'",
    "*": "is a wildcard, which matches no Host: to serve every host, set None (null)",
    "*.example.org": 'can never match a Host: a wildcard (a leading "." adds every subdomain,'
    " and the name itself); write '.example.org'",
    "bücher.example": f"can never match a Host: {ASCII_FAULT}; write 'xn--bcher-kva.example'",
    ".Bücher.example": f"can never match a Host: {ASCII_FAULT}; write '.xn--bcher-kva.example'",
    # IDNA 2003 (Python's codec) says fass.example; browsers send xn--fa-hia.example: no guess.
    "faß.example": "can never match a Host: letters outside ASCII (a Host is ASCII: write the"
    " punycode form a browser sends, UTS 46, e.g. the idna package's"
    f" idna.encode(name, uts46=True)); {NOT_A_NAME}",
    # A label over 63 letters: IDNA cannot encode it, so no guess either.
    "ü" + "a" * 63 + ".example": "can never match a Host: letters outside ASCII (a Host is"
    " ASCII: write the punycode form a browser sends, UTS 46, e.g. the idna package's"
    f" idna.encode(name, uts46=True)); {NOT_A_NAME}",
    "https://example.org:8443/blog": "can never match a Host: a scheme (only the host name is"
    f" compared), a path, {PORT_FAULT}; write 'example.org'",
    "example.org/": "can never match a Host: a path; write 'example.org'",
    "admin@example.org": "can never match a Host: a user name; write 'example.org'",
    " example.org ": "can never match a Host: spaces around it; write 'example.org'",
    "example .org": f"can never match a Host: a space; {NOT_A_NAME}",
    "ex+ample.org": f"can never match a Host: characters no Host name has; {NOT_A_NAME}",
    # Clients send an IP address in one form: 127.0.0.1, [::1].
    "127.1": f"{IP_FAULT}; write '127.0.0.1'",
    "0177.0.0.1": f"{IP_FAULT}; write '127.0.0.1'",
    "0x7f.1": f"{IP_FAULT}; write '127.0.0.1'",
    "2130706433": f"{IP_FAULT}; write '127.0.0.1'",
    "127.0.0.1.": f"{IP_FAULT}; write '127.0.0.1'",
    "[0:0:0:0:0:0:0:1]": f"{IP_FAULT}; write '[::1]'",
    "[::FFFF:127.0.0.1]": f"{IP_FAULT}; write '[::ffff:7f00:1]'",  # on every Python
    "[::ffff:0.0.0.1]": f"{IP_FAULT}; write '[::ffff:0:1]'",
    "[::g]": f"can never match a Host: characters no Host name has; {NOT_A_NAME}",
    "": "is empty: remove it",
    "  ": "is empty: remove it",
}


@pytest.mark.parametrize(
    ("entry", "fault"), UNMATCHABLE_HOSTS.items(), ids=[f"{e!r:.30}" for e in UNMATCHABLE_HOSTS]
)
@pytest.mark.parametrize("from_environment", [False, True])
def test_a_trusted_host_no_host_can_match_is_refused_naming_the_fix(
    base: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    entry: str,
    fault: str,
    from_environment: bool,
) -> None:
    """Attack 26: ["localhost:15009"] started, then told every request to add what it had."""
    hosts = ["example.org", entry]
    if from_environment:
        monkeypatch.setenv("FLASKR_TRUSTED_HOSTS", json.dumps(hosts))
    with pytest.raises(InvalidSetting) as error:
        create_app(base if from_environment else {**base, "TRUSTED_HOSTS": hosts})
    source = " (from FLASKR_TRUSTED_HOSTS)" if from_environment else ""
    assert str(error.value) == (
        f"TRUSTED_HOSTS = {hosts!r}{source} is invalid: must be"
        f" {SETTINGS['TRUSTED_HOSTS'].requirement}: {entry!r} {fault}"
    )


def test_every_unmatchable_trusted_host_is_named_in_one_line(base: dict[str, Any]) -> None:
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, "TRUSTED_HOSTS": ["a.example:1", "example.org", "*"]})
    message = str(error.value)
    assert "\n" not in message
    assert message.endswith(
        f"'a.example:1' can never match a Host: {PORT_FAULT}; write 'a.example'; '*' is a"
        " wildcard, which matches no Host: to serve every host, set None (null)"
    )


def test_measured_fallback_key_without_brackets_is_refused(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a fallback key written without the JSON brackets let the key "o" sign sessions."""
    monkeypatch.setenv("FLASKR_SECRET_KEY_FALLBACKS", OLD_KEY)
    with pytest.raises(
        InvalidSetting, match="^FLASKR_SECRET_KEY_FALLBACKS = '<redacted, 44 bytes>'"
    ):
        create_app(base)
    monkeypatch.delenv("FLASKR_SECRET_KEY_FALLBACKS")
    # Debug and testing do not relax the type: a bare string is refused there too.
    for relaxed in ({"TESTING": True}, {"DEBUG": True}):
        with pytest.raises(InvalidSetting, match="^SECRET_KEY_FALLBACKS = '<redacted"):
            create_app({**base, **relaxed, "SECRET_KEY_FALLBACKS": OLD_KEY})


def test_measured_zero_posts_per_page_is_refused_at_creation(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: FLASKR_POSTS_PER_PAGE=0 served, and the index was a 500 once a post existed."""
    monkeypatch.setenv("FLASKR_POSTS_PER_PAGE", "0")
    with pytest.raises(InvalidSetting) as error:
        create_app(base)
    assert str(error.value) == (
        "POSTS_PER_PAGE = 0 (from FLASKR_POSTS_PER_PAGE) is invalid:"
        f" must be a positive integer (at most {MAX_INT})"
    )


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("FLASKR_POSTS_PER_PAG", "did you mean FLASKR_POSTS_PER_PAGE?"),
        ("FLASKR_SECRET_KEYS", "did you mean FLASKR_SECRET_KEY?"),
        ("FLASKR_TEST_DATABASE_URL", "did you mean FLASKR_DATABASE?"),
        ("FLASKR_NONSENSE", "the settings are listed in README.md"),
        ("FLASKR_SESSION__NESTED", "did you mean"),
    ],
)
def test_an_unknown_environment_setting_is_refused(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch, variable: str, hint: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(InvalidSetting) as error:
        create_app(base)
    assert str(error.value).startswith(f"{variable} is not a setting of this app: {hint}")


def test_several_bad_settings_are_named_in_one_message(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASKR_SESSION_COOKIE_SECURE", "False")
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, "POSTS_PER_PAGE": 0, "SECRET_KEY": b""})
    message = str(error.value)
    assert message.startswith("3 settings are invalid: FLASKR_SESSION_COOKIE_SECURE = 'False'")
    assert "; SECRET_KEY = '<redacted, 0 bytes>' is invalid" in message
    assert "; POSTS_PER_PAGE = 0 is invalid" in message


@pytest.mark.parametrize("relaxed", [{"TESTING": True}, {"DEBUG": True}])
def test_debug_and_testing_relax_only_the_key_strength(
    base: dict[str, Any], relaxed: dict[str, Any]
) -> None:
    weak = {"SECRET_KEY": "dev", "SECRET_KEY_FALLBACKS": ["o"]}
    assert serving_app({**base, **relaxed, **weak}).config["SECRET_KEY"] == "dev"
    with pytest.raises(InvalidSetting, match="^POSTS_PER_PAGE = 0 is invalid"):
        create_app({**base, **relaxed, **weak, "POSTS_PER_PAGE": 0})
    with pytest.raises(InvalidSetting, match="^SECRET_KEY = None is invalid"):
        create_app({**base, **relaxed, "SECRET_KEY": None})


def test_a_debug_flag_that_is_not_a_boolean_relaxes_nothing(base: dict[str, Any]) -> None:
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, "DEBUG": "yes", "SECRET_KEY": "dev"})
    assert (
        str(error.value) == "DEBUG = 'yes' is invalid: must be True or False (JSON true or false)"
    )
    with pytest.raises(InvalidSetting) as error:
        check_config_for_serving({"DEBUG": "yes", "SECRET_KEY": "dev"}, {})
    assert str(error.value).startswith("SECRET_KEY = 'dev' (the development default) is invalid")


@pytest.mark.parametrize(
    ("config", "environment", "requirement"),
    [
        ({}, {}, "a random key of at least 32 bytes, not 'dev'"),  # Flaskr's factory: "dev"
        ({"SECRET_KEY": "short"}, {}, "a random key of at least 32 bytes, not 'dev'"),
        ({"TESTING": True, "SECRET_KEY": ""}, {}, "a str or bytes key"),
        ({}, {"FLASKR_SECRET_KEY_FALLBACKS": '["o"]'}, "a list of old secret keys, each of at"),
    ],
)
def test_a_weak_key_builds_an_app_that_serving_refuses(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    config: dict[str, Any],
    environment: dict[str, str],
    requirement: str,
) -> None:
    """Issue 26: Flaskr's factory returns an app with the "dev" key; production is refused later."""
    monkeypatch.setattr(Quart, "auto_find_instance_path", lambda self: str(tmp_path))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if config.get("TESTING"):  # an empty key is no key: refused at once, even when testing
        with pytest.raises(InvalidSetting, match=f"is invalid: must be {requirement}$"):
            create_app(config)
        return
    app = create_app(config or None)
    with pytest.raises(InvalidSetting) as error:
        check_serving(app)
    assert f"is invalid: must be {requirement}" in str(error.value)
    if "SECRET_KEY_FALLBACKS" not in str(error.value):
        assert f"set it in {tmp_path / 'config.py'} (SECRET_KEY" in str(error.value)


def test_a_database_password_is_not_shown(base: dict[str, Any]) -> None:
    with pytest.raises(InvalidSetting) as error:
        create_app({**base, "DATABASE": "postgresq://flaskr:hunter2@db/flaskr"})
    assert "'postgresq://flaskr:***@db/flaskr' is invalid" in str(error.value)


# The entry points, as real processes: each stops with the one line.
SERVE = [sys.executable, "-m", "flaskr_async", "serve"]
QUART = str(Path(sys.executable).with_name("quart"))
ZERO_PAGE = "POSTS_PER_PAGE = 0 (from FLASKR_POSTS_PER_PAGE) is invalid: must be a positive integer"


@pytest.fixture
def bad_environment(tmp_path: Path) -> dict[str, str]:
    """Return a server environment with POSTS_PER_PAGE=0."""
    return server_env(tmp_path / "flaskr.sqlite", POSTS_PER_PAGE="0")


def last_line(output: str) -> str:
    """Return the last non-empty line a process wrote."""
    return [line for line in output.splitlines() if line.strip()][-1]


@pytest.mark.system
def test_serve_stops_with_one_line(bad_environment: dict[str, str]) -> None:
    port = free_port()
    server = start([*SERVE, "--bind", f"127.0.0.1:{port}"], bad_environment, port)
    assert server.process.wait(30) == 1
    output = server.output()
    assert output.strip().splitlines() == [f"Start-up failed: {ZERO_PAGE} (at most {MAX_INT})"]


@pytest.mark.system
def test_hypercorn_stops_with_one_line(bad_environment: dict[str, str]) -> None:
    port = free_port()
    server = start(hypercorn_command(port), bad_environment, port)
    # hypercorn 0.18 drops its worker's exit status (pgjones/hypercorn#269): the serve
    # command above is the one that exits non-zero.
    assert server.process.wait(30) == 0
    output = server.output()
    assert "Traceback" not in output
    assert last_line(output) == f"Start-up failed: {ZERO_PAGE} (at most {MAX_INT})"


@pytest.mark.system
def test_quart_run_stops_with_one_line(bad_environment: dict[str, str]) -> None:
    port = free_port()
    server = start(
        [QUART, "--app", "flaskr_async", "run", "--port", str(port)], bad_environment, port
    )
    assert server.process.wait(30) == 1
    # The factory's refusal is a click error: click prints it, not Quart's traceback of it.
    output = server.output()
    assert output.strip().splitlines() == [f"Error: {ZERO_PAGE} (at most {MAX_INT})"]
