"""Every setting the app reads, what each must be, and the checks: at creation, and at serving.

create_app checks every setting (``check``), the secret keys for their type only, so that
Flaskr's ``"dev"`` key builds an app the commands can use; then the settings that cannot work
together (setting_rules.py). The keys' strength is checked when the app starts to serve
(``check_serving``), outside debug and testing.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import MutableMapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from datetime import timedelta
from typing import Any

import click

from flaskr_async.forms import LARGEST_FORM_BYTES
from flaskr_async.host_names import entry_fault
from flaskr_async.setting_rules import RULES
from flaskr_async.setting_rules import relaxed

# SQLite's PRAGMA synchronous levels (https://sqlite.org/pragma.html#pragma_synchronous).
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
PREFIX = "FLASKR_"
MIN_SECRET_KEY_BYTES = 32
# Counts and seconds go into SQL parameters and timestamps: this bound fits every column and
# parameter of both backends, so no setting overflows at the first request.
MAX_INT = 2**31 - 1
CONFIG_FILE = "<instance folder>/config.py"  # replaced by the app's own path in messages
KEY_HINT = (
    f'set it in {CONFIG_FILE} (SECRET_KEY = "...") or the environment (FLASKR_SECRET_KEY),'
    ' for example to the output of python3 -c "import secrets; print(secrets.token_hex())"'
)


class InvalidSetting(click.ClickException, ValueError):
    """A setting has a value the app cannot run with; the message says which and why.

    A click error: under the quart command (init-db, backup, run), which builds the app before
    its command runs, click prints it as one `Error: ...` line and exits 1, not a traceback.
    """


# The default of a setting this app leaves to Quart, Quart-WTF or create_app itself.
UNSET: Any = object()


@dataclass(frozen=True)
class Setting:
    """One setting: what it must be, its default and meaning, and how the environment writes it."""

    accepts: Callable[[Any], bool]
    must_be: str  # completes "POSTS_PER_PAGE = 0 is invalid: must be ..."
    default: Any  # UNSET: set by create_app (SECRET_KEY, DATABASE) or by Quart or Quart-WTF
    meaning: str  # one line, for README.md's table
    example: str = ""  # a valid environment value; "": the default, as JSON
    shown_default: str = ""  # the README's default column; "": the default, as JSON
    hint: str = ""  # how to fix a bad value, after must_be in messages only
    text: bool = False  # the environment's raw text is the value; otherwise it is read as JSON
    secret: bool = False  # never shown in messages
    show: Callable[[Any], str] = repr
    advise: Callable[[Any], str] = lambda value: ""  # how to fix this bad value, if it can say

    @property
    def requirement(self) -> str:
        """Say what the value must be, and how to fix it where that is not obvious."""
        return f"{self.must_be}: {self.hint}" if self.hint else self.must_be

    def requirement_for(self, value: Any) -> str:
        """Say what the value must be, and how to fix this one, where the setting can say."""
        advice = self.advise(value)
        return f"{self.requirement}: {advice}" if advice else self.requirement

    @property
    def environment_example(self) -> str:
        """Return a valid value of this setting as an environment variable holds it."""
        return self.example or as_json(self.default)


def as_json(value: Any) -> str:
    """Write a default as JSON, the way the environment and the README show it."""
    if isinstance(value, timedelta):
        return str(int(value.total_seconds()))
    return json.dumps(value)


def whole(low: int) -> Callable[[Any], bool]:
    """Accept an int from low to MAX_INT; not a bool, though True is an int to Python."""
    return lambda value: type(value) is int and low <= value <= MAX_INT


def positive(default: int, meaning: str) -> Setting:
    """Declare a positive integer setting."""
    return Setting(whole(1), f"a positive integer (at most {MAX_INT})", default, meaning)


def optional(setting: Setting) -> Setting:
    """Declare a setting that may also be None (null in the environment)."""
    accepts = setting.accepts
    return replace(
        setting,
        accepts=lambda value: value is None or accepts(value),
        must_be=f"None (null) or {setting.must_be}",
    )


def one_of(choices: Sequence[str], default: str, meaning: str) -> Setting:
    """Declare a text setting taking one of a few words, in any letter case."""
    words = {choice.upper() for choice in choices}
    return Setting(
        lambda value: isinstance(value, str) and value.upper() in words,
        f"one of {', '.join(choices)}",
        default,
        meaning,
        example=default,
        shown_default=default,
        text=True,
    )


def boolean(default: bool, meaning: str) -> Setting:
    """Declare a True or False setting."""
    return Setting(
        lambda value: type(value) is bool, "True or False (JSON true or false)", default, meaning
    )


def is_key(value: Any, min_bytes: int) -> bool:
    """Tell whether a value is a str or bytes secret key of at least min_bytes."""
    encoded = value.encode() if isinstance(value, str) else value
    return isinstance(encoded, bytes) and len(encoded) >= min_bytes and encoded != b"dev"


def key_list(min_bytes: int) -> Callable[[Any], bool]:
    """Accept None or a list of keys; a bare string would become one key per character."""
    return lambda value: (
        value is None
        or (isinstance(value, list | tuple) and all(is_key(key, min_bytes) for key in value))
    )


def redact(value: Any) -> str:
    """Show a secret by its size only."""
    if value is None:
        return "None"
    if value == "dev":
        return "'dev' (the development default)"
    if isinstance(value, str | bytes):
        size = len(value.encode() if isinstance(value, str) else value)
        return f"'<redacted, {size} bytes>'"
    if isinstance(value, list | tuple):
        return f"[{', '.join(redact(item) for item in value)}]"
    return f"<redacted {type(value).__name__}>"


def without_password(value: Any) -> str:
    """Show a database URL without its password."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", repr(value))


URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


def is_database(value: Any) -> bool:
    """Accept a SQLite file path, sqlite:///path, or a postgresql:// or postgres:// URL."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or "\0" in value:
        return False
    if value.startswith(("postgresql://", "postgres://")):
        return True
    if value.startswith("sqlite:///"):
        value = value.removeprefix("sqlite:///")
    elif URL_SCHEME.match(value):
        return False  # mysql://..., postgresql:/x, sqlite://x: not a file name either
    # ":memory:" and "" give each pooled connection a database of its own.
    return value.strip() not in ("", ":memory:")


def is_lifetime(value: Any) -> bool:
    """Accept a positive timedelta or a positive number of seconds."""
    if isinstance(value, timedelta):
        return timedelta(0) < value <= timedelta(seconds=MAX_INT)
    return whole(1)(value)


def is_host_list(value: Any) -> bool:
    """Accept a non-empty list of host names a Host can match (a bare string: one per letter)."""
    return isinstance(value, list | tuple) and len(value) > 0 and not host_list_faults(value)


def host_list_faults(value: Any) -> str:
    """Name each TRUSTED_HOSTS entry that no Host can match, and how to write it."""
    if not isinstance(value, list | tuple):
        return ""
    return "; ".join(fault for entry in value if (fault := entry_fault(entry)) is not None)


def seconds(most: int, default: float, meaning: str) -> Setting:
    """Declare a positive number of seconds (int or float) up to ``most``."""
    return Setting(
        lambda value: type(value) in (int, float) and 0 < value <= most and math.isfinite(value),
        f"a positive number of seconds (at most {most})",
        default,
        meaning,
    )


def seconds_between(least: float, most: float, default: float, meaning: str) -> Setting:
    """Declare a number of seconds (int or float) from ``least`` to ``most``."""
    return Setting(
        lambda value: type(value) in (int, float) and least <= value <= most,
        f"a number of seconds from {least:g} to {most:g}",
        default,
        meaning,
    )


def count_between(least: int, most: int, default: int, meaning: str) -> Setting:
    """Declare an integer from ``least`` to ``most``."""
    return Setting(
        lambda value: type(value) is int and least <= value <= most,
        f"an integer from {least} to {most}",
        default,
        meaning,
    )


SECRET_KEY = Setting(
    lambda value: is_key(value, MIN_SECRET_KEY_BYTES),
    f"a random key of at least {MIN_SECRET_KEY_BYTES} bytes, not 'dev'",
    UNSET,
    "signs sessions and CSRF tokens; serving refuses a weaker one, before the first request"
    " (commands, debug and testing accept any key, `dev` included);"
    " `python -m flaskr_async serve` writes a random one on its first run",
    example="a-random-key-of-at-least-32-bytes",
    shown_default='"dev" (create_app, as in Flaskr)',
    hint=KEY_HINT,
    text=True,
    secret=True,
    show=redact,
)
SECRET_KEY_FALLBACKS = Setting(
    key_list(MIN_SECRET_KEY_BYTES),
    f"a list of old secret keys, each of at least {MIN_SECRET_KEY_BYTES} bytes",
    UNSET,
    "old keys still accepted for sessions while you rotate (see Scaling out)",
    example='["an-old-key-of-at-least-32-bytes-long"]',
    shown_default="null (Quart)",
    secret=True,
    show=redact,
)

# Every setting the app reads, once: what it must be, its default and what it means. A new
# setting is one entry here (and a row of tests/test_settings.py's CASES); README.md's table
# is this table (tests/test_settings.py checks it).
SETTINGS: dict[str, Setting] = {
    "SECRET_KEY": SECRET_KEY,
    "SECRET_KEY_FALLBACKS": SECRET_KEY_FALLBACKS,
    "DATABASE": Setting(
        is_database,
        "a SQLite file path, sqlite:///path, or postgresql://user:password@host/database",
        UNSET,
        "the database; other URL schemes (`mysql://`, `postgresql:/x`) and `:memory:` are refused",
        example="postgresql://flaskr:secret@db.internal/flaskr",
        shown_default="instance/flaskr.sqlite (create_app, as in Flaskr)",
        text=True,
        show=without_password,
    ),
    "DATABASE_POOL_SIZE": optional(
        Setting(
            whole(1),
            f"a positive integer (at most {MAX_INT})",
            None,
            "connections each worker opens at start-up and leases to one statement or"
            " transaction at a time; null: SQLite 1, PostgreSQL 4 (SQLite: each is a thread"
            " contending with the event loop for the GIL, so more is slower: see Performance)",
            example="4",
        )
    ),
    "SQLITE_BUSY_TIMEOUT": seconds(86400, 5.0, "seconds a write waits for another writer's lock"),
    # NORMAL in WAL mode: a process crash loses nothing acknowledged; a power cut may lose the
    # last transactions (never corrupts). FULL survives power loss too.
    "SQLITE_SYNCHRONOUS": one_of(SYNCHRONOUS_MODES, "NORMAL", "see Durability"),
    "POSTS_PER_PAGE": positive(20, "index page size"),
    # Lower, a post that its form accepts (64 KiB of text) could get 413, with a message naming
    # the form's own limit, which the post is under (middleware/body_limits.py).
    "MAX_CONTENT_LENGTH": Setting(
        whole(LARGEST_FORM_BYTES),
        f"an integer from {LARGEST_FORM_BYTES} to {MAX_INT}",
        1024 * 1024,
        "larger request bodies get 413; each form has its own, lower limit (a post's is the"
        " largest)",
        hint=f"a post's form may send {LARGEST_FORM_BYTES} bytes (64 KiB of text, percent-encoded)",
    ),
    "PASSWORD_HASH_CONCURRENCY": positive(
        2, "password hashes run at once per worker (each takes about 19 MiB and a core)"
    ),
    "LOGIN_FAILURE_WINDOW": positive(15 * 60, "seconds failed logins are remembered"),
    "LOGIN_MAX_FAILURES_PER_USERNAME": positive(
        10, "failures for one username from one client in the window before 429"
    ),
    "LOGIN_MAX_FAILURES_PER_ADDRESS": positive(
        20, "failures from one client (an IPv4 address or an IPv6 /64) in the window before 429"
    ),
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": positive(
        100, "failures for one username from browsers not known to it, all addresses together"
    ),
    "LOGIN_MAX_FAILURES_PER_DEVICE": positive(10, "failures of a browser known to the account"),
    # The live index's bounds: each one caps what a client can make a worker hold or do.
    "LIVE_MAX_STREAMS": count_between(
        1,
        100_000,
        1000,
        "open live-index streams per worker; more get 503 with `Retry-After: 5`. At start-up"
        " each worker raises its open-file soft limit to twice this (plus the files it holds) if"
        " it may, else clamps this to half the files not in use (and LIVE_STREAMS_PER_CLIENT"
        " below that) and logs one line: the other half stays for ordinary requests",
    ),
    "LIVE_STREAMS_PER_CLIENT": count_between(
        1,
        1000,
        8,
        "streams one client may hold per worker (an IPv4 address or an IPv6 /64, the login"
        " throttle's address); more get 503",
    ),
    "LIVE_QUEUE_SIZE": count_between(
        1,
        10_000,
        64,
        "events (at most 74 bytes each) queued unsent for one stream, catch-up included; past it"
        " the stream ends (the page reconnects) or, for a catch-up, the page is told to reload",
    ),
    "LIVE_HISTORY": count_between(
        1,
        100_000,
        1000,
        "recent events a reconnecting page catches up on (in each worker's memory, and kept in"
        " the `post_event` table)",
    ),
    # Below 1 s a keep-alive is a flood; above 300 s proxies (nginx: 60 s) cut idle streams.
    "LIVE_KEEPALIVE_INTERVAL": seconds_between(
        1, 300, 15.0, "a keep-alive comment on each idle stream this often, so proxies keep it open"
    ),
    "LIVE_STREAM_LIFETIME": seconds_between(
        10,
        86400,
        600.0,
        "a stream ends after this (less up to a tenth, spread), and the browser reconnects from"
        " its last event",
    ),
    # Below 10 ms the change check is a busy loop; above 60 s the page is no longer live.
    "LIVE_POLL_INTERVAL": seconds_between(
        0.01,
        60,
        0.05,
        "SQLite: how often each worker asks whether anything committed (`PRAGMA data_version`,"
        " no table read); PostgreSQL: the wait between reconnection attempts of the listener",
    ),
    "SEND_TIMEOUT": seconds_between(
        1,
        600,
        10.0,
        "every write to a client: one that takes nothing for this long loses the response and"
        " its connection",
    ),
    "PROXY_FIX_TRUSTED_HOPS": Setting(
        whole(0),
        f"an integer from 0 to {MAX_INT}",
        0,
        "set to the number of proxies in front (1 behind nginx) to trust `X-Forwarded-*`",
        example="1",
    ),
    # Loopback stays listed for checks on the server itself.
    "TRUSTED_HOSTS": optional(
        Setting(
            is_host_list,
            "a non-empty list of host names as a Host header writes them, without a port",
            ["localhost", "127.0.0.1", "[::1]"],
            "host names served (port ignored, case-insensitive; `.example.org` adds its"
            " subdomains); any other `Host` gets 400; null serves every host",
            example='["example.org", ".example.org"]',
            advise=host_list_faults,
        )
    ),
    "SESSION_IDLE_TIMEOUT": positive(
        24 * 3600, "seconds a login session lives without a request (enforced on the server)"
    ),
    "SESSION_COOKIE_SECURE": optional(
        Setting(
            lambda value: type(value) is bool,
            "True or False (JSON true or false)",
            None,
            "the session cookie's Secure flag; null: on, except when debugging or testing;"
            " false for plain-HTTP use other than by a browser on localhost (`make run` makes it"
            " false where neither config.py nor the environment sets it, and says so: scripts"
            " never send a Secure cookie over http)",
            example="true",
        )
    ),
    "SESSION_COOKIE_SAMESITE": one_of(
        ("Lax", "Strict", "None"), "Lax", "the session cookie's SameSite"
    ),
    "SESSION_COOKIE_HTTPONLY": replace(
        boolean(True, "keep it: scripts cannot read the session cookie"),
        default=UNSET,
        shown_default="true (Quart)",
        example="true",
    ),
    # The cookie keeps its expiry from login: no Set-Cookie on every response (nor on static files).
    "SESSION_REFRESH_EACH_REQUEST": boolean(
        False, "the cookie keeps its expiry from login: no `Set-Cookie` on every response"
    ),
    "PERMANENT_SESSION_LIFETIME": Setting(
        is_lifetime,
        f"a positive timedelta or number of seconds (at most {MAX_INT})",
        timedelta(days=14),
        "a login session's absolute lifetime (enforced on the server)",
        shown_default="14 days",
    ),
    "WTF_CSRF_ENABLED": replace(
        boolean(True, "CSRF tokens on every form (tests turn it off)"),
        default=UNSET,
        shown_default="true (Quart-WTF)",
        example="true",
    ),
    # One CSRF token per session, valid until the session ends: no 400s for a second tab.
    "WTF_CSRF_TIME_LIMIT": optional(
        Setting(
            whole(1),
            f"a positive integer (at most {MAX_INT})",
            None,
            "seconds a form's token lasts; null: as long as its login session",
            example="3600",
        )
    ),
    "PROPAGATE_EXCEPTIONS": optional(
        replace(
            boolean(
                False, "re-raise errors instead of the 500 page; null: when testing or debugging"
            ),
            default=UNSET,
            shown_default="null (Quart)",
            example="true",
        )
    ),
    "TESTING": replace(
        boolean(False, "testing: relaxes the secret key's strength and nothing else"),
        default=UNSET,
        shown_default="false (Quart)",
        example="true",
    ),
    "DEBUG": replace(
        boolean(False, "debugging: relaxes the secret key's strength and nothing else"),
        default=UNSET,
        shown_default="false (Quart)",
        example="true",
    ),
}
# What create_app puts in the config before config.py and the environment.
DEFAULTS: dict[str, Any] = {
    name: setting.default for name, setting in SETTINGS.items() if setting.default is not UNSET
}
# The keys as create_app checks them, and serving in debug or testing: any str or bytes key
# ("dev" included). Serving otherwise checks them as SETTINGS says (check_serving).
RELAXED: dict[str, Setting] = {
    "SECRET_KEY": replace(
        SECRET_KEY,
        accepts=lambda value: is_key(value, 1) or value == "dev",
        must_be="a str or bytes key",
        hint="",
    ),
    "SECRET_KEY_FALLBACKS": replace(
        SECRET_KEY_FALLBACKS, accepts=key_list(1), must_be="a list of str or bytes keys"
    ),
}


def markdown_table() -> str:
    """Return README.md's settings table: one row per setting, from SETTINGS."""
    rows = ["| setting | must be | default | meaning |", "| --- | --- | --- | --- |"]
    for name, setting in SETTINGS.items():
        default = setting.shown_default or f"`{as_json(setting.default)}`"
        rows.append(f"| `{name}` | {setting.must_be} | {default} | {setting.meaning} |")
    return "\n".join(rows)


def apply_environment(config: MutableMapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Set each FLASKR_ variable's setting (text as is, anything else as JSON); return problems."""
    problems = []
    for variable in sorted(name for name in environ if name.startswith(PREFIX)):
        name = variable.removeprefix(PREFIX)
        setting = SETTINGS.get(name)
        raw = environ[variable]
        if setting is None:
            problems.append(unknown(variable))
        elif setting.text:
            config[name] = raw
        else:
            try:
                config[name] = json.loads(raw)
            except ValueError:
                shown = redact(raw) if setting.secret else repr(raw)
                problems.append(
                    f"{variable} = {shown} is invalid: must be {setting.requirement}, written"
                    f" as JSON, e.g. {variable}='{setting.environment_example}'"
                )
    return problems


def unknown(variable: str) -> str:
    """Say that an environment variable names no setting, suggesting the closest one."""
    close = difflib.get_close_matches(variable.removeprefix(PREFIX), SETTINGS, n=1)
    hint = f"did you mean {PREFIX}{close[0]}?" if close else "the settings are listed in README.md"
    return f"{variable} is not a setting of this app: {hint}"


def stated(name: str, config: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Say a setting's value (as its setting shows it) and where it came from."""
    source = f" (from {PREFIX}{name})" if PREFIX + name in environ else ""
    return f"{name} = {SETTINGS[name].show(config[name])}{source}"


def invalid(config: Mapping[str, Any], table: Mapping[str, Setting]) -> list[str]:
    """Name each setting of the table whose value it does not accept."""
    # Absent: the library that reads it applies its own default (quart-wtf's CSRF ones).
    return [
        name
        for name, setting in table.items()
        if name in config and not setting.accepts(config[name])
    ]


def problems(
    config: Mapping[str, Any], environ: Mapping[str, str], table: Mapping[str, Setting]
) -> list[str]:
    """Say what is wrong with each setting of the table, naming where its value came from."""
    return [
        f"{stated(name, config, environ)} is invalid: must be"
        f" {table[name].requirement_for(config[name])}"
        for name in invalid(config, table)
    ]


def conflicts(
    config: Mapping[str, Any], environ: Mapping[str, str], unchecked: set[str]
) -> list[str]:
    """Say which settings cannot work together (setting_rules.py), each valid alone."""
    return [
        f"{' with '.join(stated(name, config, environ) for name in rule.reads)} is invalid:"
        f" {rule.why}: {rule.fix}"
        for rule in RULES
        if unchecked.isdisjoint(rule.reads) and rule.conflict(config)
    ]


def refuse(found: Sequence[str], config_file: str) -> None:
    """Raise InvalidSetting naming every problem found, if any, in one line."""
    found = [line.replace(CONFIG_FILE, config_file) for line in found]
    if len(found) == 1:
        raise InvalidSetting(found[0])
    if found:
        raise InvalidSetting(f"{len(found)} settings are invalid: {'; '.join(found)}")


def check(
    config: Mapping[str, Any],
    environ: Mapping[str, str],
    earlier: Sequence[str] = (),
    config_file: str = CONFIG_FILE,
) -> None:
    """Raise InvalidSetting naming every bad setting or conflict (earlier: the environment's).

    The keys are checked for their type only: their strength is check_serving's.
    ``config_file`` is the instance folder's config.py that the app reads, named in the hints.
    """
    if relaxed(config):
        table = {**SETTINGS, **RELAXED}
    else:  # a key of the wrong type is told what serving will need of it
        table = {
            **SETTINGS,
            **{name: replace(SETTINGS[name], accepts=RELAXED[name].accepts) for name in RELAXED},
        }
    # A setting the environment wrote wrongly kept its earlier value: no rule judges that.
    unchecked = set(invalid(config, table))
    unchecked.update(
        name for name in SETTINGS for line in earlier if line.startswith(f"{PREFIX}{name} = ")
    )
    found = [*earlier, *problems(config, environ, table), *conflicts(config, environ, unchecked)]
    refuse(found, config_file)


def check_serving(
    config: Mapping[str, Any], environ: Mapping[str, str], config_file: str = CONFIG_FILE
) -> None:
    """Raise InvalidSetting for a key too weak to serve with ("dev", short), unless relaxed."""
    if not relaxed(config):
        strict = {name: SETTINGS[name] for name in RELAXED}
        refuse(problems(config, environ, strict), config_file)
