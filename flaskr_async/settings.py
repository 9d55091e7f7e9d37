"""Every setting the app reads, what each must be, and the one check that create_app runs."""

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

from flaskr_async.db.sqlite import SYNCHRONOUS_MODES

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


class InvalidSetting(ValueError):
    """A setting has a value the app cannot run with; the message says which and why."""


@dataclass(frozen=True)
class Setting:
    """What one setting's value must be, and how an environment variable writes it."""

    accepts: Callable[[Any], bool]
    must_be: str  # completes "POSTS_PER_PAGE = 0 is invalid: must be ..."
    example: str  # a valid environment value
    text: bool = False  # the environment's raw text is the value; otherwise it is read as JSON
    secret: bool = False  # never shown in messages
    show: Callable[[Any], str] = repr


def whole(low: int) -> Callable[[Any], bool]:
    """Accept an int from low to MAX_INT; not a bool, though True is an int to Python."""
    return lambda value: type(value) is int and low <= value <= MAX_INT


def positive(example: str = "10") -> Setting:
    """Declare a positive integer setting."""
    return Setting(whole(1), f"a positive integer (at most {MAX_INT})", example)


def optional(setting: Setting) -> Setting:
    """Declare a setting that may also be None (null in the environment)."""
    accepts = setting.accepts
    return replace(
        setting,
        accepts=lambda value: value is None or accepts(value),
        must_be=f"None (null) or {setting.must_be}",
    )


def one_of(*choices: str) -> Setting:
    """Declare a text setting taking one of a few words, in any letter case."""
    words = {choice.upper() for choice in choices}
    return Setting(
        lambda value: isinstance(value, str) and value.upper() in words,
        f"one of {', '.join(choices)}",
        choices[0],
        text=True,
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
    """Accept a non-empty list of host names (a bare string would be one host per letter)."""
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(host, str) and re.fullmatch(r"[^\s/@,]+", host) for host in value)
    )


def seconds(most: int, example: str) -> Setting:
    """Declare a positive number of seconds (int or float) up to ``most``."""
    return Setting(
        lambda value: type(value) in (int, float) and 0 < value <= most and math.isfinite(value),
        f"a positive number of seconds (at most {most})",
        example,
    )


def seconds_between(least: float, most: float, example: str) -> Setting:
    """Declare a number of seconds (int or float) from ``least`` to ``most``."""
    return Setting(
        lambda value: type(value) in (int, float) and least <= value <= most,
        f"a number of seconds from {least:g} to {most:g}",
        example,
    )


def count_between(least: int, most: int, example: str) -> Setting:
    """Declare an integer from ``least`` to ``most``."""
    return Setting(
        lambda value: type(value) is int and least <= value <= most,
        f"an integer from {least} to {most}",
        example,
    )


BOOLEAN = Setting(lambda value: type(value) is bool, "True or False (JSON true or false)", "true")
SECRET_KEY = Setting(
    lambda value: is_key(value, MIN_SECRET_KEY_BYTES),
    f"a random key of at least {MIN_SECRET_KEY_BYTES} bytes, not 'dev': {KEY_HINT}",
    "a-random-key-of-at-least-32-bytes",
    text=True,
    secret=True,
    show=redact,
)
SECRET_KEY_FALLBACKS = Setting(
    key_list(MIN_SECRET_KEY_BYTES),
    f"a list of old secret keys, each of at least {MIN_SECRET_KEY_BYTES} bytes",
    '["old-key"]',
    secret=True,
    show=redact,
)

# One line per setting the app reads. Check with tests/test_settings.py's table when adding one.
SETTINGS: dict[str, Setting] = {
    "SECRET_KEY": SECRET_KEY,
    "SECRET_KEY_FALLBACKS": SECRET_KEY_FALLBACKS,
    "DATABASE": Setting(
        is_database,
        "a SQLite file path, sqlite:///path, or postgresql://user:password@host/database",
        "postgresql://flaskr:secret@db.internal/flaskr",
        text=True,
        show=without_password,
    ),
    "DATABASE_POOL_SIZE": optional(positive("4")),
    "SQLITE_BUSY_TIMEOUT": seconds(86400, "5.0"),
    "SQLITE_SYNCHRONOUS": one_of(*SYNCHRONOUS_MODES),
    "POSTS_PER_PAGE": positive("20"),
    "MAX_CONTENT_LENGTH": positive("1048576"),
    "PASSWORD_HASH_CONCURRENCY": positive("2"),
    "LOGIN_FAILURE_WINDOW": positive("900"),
    "LOGIN_MAX_FAILURES_PER_USERNAME": positive("10"),
    "LOGIN_MAX_FAILURES_PER_ADDRESS": positive("20"),
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": positive("100"),
    "LOGIN_MAX_FAILURES_PER_DEVICE": positive("10"),
    # The live index's bounds: each one caps what a client can make a worker hold or do.
    "LIVE_MAX_STREAMS": count_between(1, 100_000, "1000"),
    "LIVE_STREAMS_PER_CLIENT": count_between(1, 1000, "8"),
    "LIVE_QUEUE_SIZE": count_between(1, 10_000, "64"),
    "LIVE_HISTORY": count_between(1, 100_000, "1000"),
    # Below 1 s a keep-alive is a flood; above 300 s proxies (nginx: 60 s) cut idle streams.
    "LIVE_KEEPALIVE_INTERVAL": seconds_between(1, 300, "15"),
    "LIVE_STREAM_LIFETIME": seconds_between(10, 86400, "600"),
    # Below 10 ms the change check is a busy loop; above 60 s the page is no longer live.
    "LIVE_POLL_INTERVAL": seconds_between(0.01, 60, "0.05"),
    "SEND_TIMEOUT": seconds_between(1, 600, "10"),
    "PROXY_FIX_TRUSTED_HOPS": Setting(whole(0), f"an integer from 0 to {MAX_INT}", "1"),
    "TRUSTED_HOSTS": optional(
        Setting(is_host_list, "a non-empty list of host names", '["example.org", ".example.org"]')
    ),
    "SESSION_IDLE_TIMEOUT": positive("7200"),
    "SESSION_COOKIE_SECURE": optional(BOOLEAN),
    "SESSION_COOKIE_SAMESITE": one_of("Lax", "Strict", "None"),
    "SESSION_COOKIE_HTTPONLY": BOOLEAN,
    "SESSION_REFRESH_EACH_REQUEST": BOOLEAN,
    "PERMANENT_SESSION_LIFETIME": Setting(
        is_lifetime, f"a positive timedelta or number of seconds (at most {MAX_INT})", "1209600"
    ),
    "WTF_CSRF_ENABLED": BOOLEAN,
    "WTF_CSRF_TIME_LIMIT": optional(positive("3600")),
    "PROPAGATE_EXCEPTIONS": optional(BOOLEAN),
    "TESTING": BOOLEAN,
    "DEBUG": BOOLEAN,
}
# Debug and testing relax the key strength, and nothing else.
RELAXED: dict[str, Setting] = {
    "SECRET_KEY": replace(
        SECRET_KEY,
        accepts=lambda value: is_key(value, 1) or value == "dev",
        must_be="a str or bytes key",
    ),
    "SECRET_KEY_FALLBACKS": replace(
        SECRET_KEY_FALLBACKS, accepts=key_list(1), must_be="a list of str or bytes keys"
    ),
}


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
                    f"{variable} = {shown} is invalid: must be {setting.must_be}, written as"
                    f" JSON, e.g. {variable}='{setting.example}'"
                )
    return problems


def unknown(variable: str) -> str:
    """Say that an environment variable names no setting, suggesting the closest one."""
    close = difflib.get_close_matches(variable.removeprefix(PREFIX), SETTINGS, n=1)
    hint = f"did you mean {PREFIX}{close[0]}?" if close else "the settings are listed in README.md"
    return f"{variable} is not a setting of this app: {hint}"


def problems(config: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Say what is wrong with each declared setting's value, naming where it came from."""
    relaxed = config.get("DEBUG") is True or config.get("TESTING") is True
    table = {**SETTINGS, **RELAXED} if relaxed else SETTINGS
    found = []
    for name, setting in table.items():
        # Absent: the library that reads it applies its own default (quart-wtf's CSRF ones).
        if name in config and not setting.accepts(config[name]):
            source = f" (from {PREFIX}{name})" if PREFIX + name in environ else ""
            found.append(
                f"{name} = {setting.show(config[name])}{source} is invalid:"
                f" must be {setting.must_be}"
            )
    return found


def check(
    config: Mapping[str, Any],
    environ: Mapping[str, str],
    earlier: Sequence[str] = (),
    config_file: str = CONFIG_FILE,
) -> None:
    """Raise InvalidSetting naming every bad setting, if any (earlier: the environment's).

    ``config_file`` is the instance folder's config.py that the app reads, named in the hints.
    """
    found = [
        line.replace(CONFIG_FILE, config_file) for line in (*earlier, *problems(config, environ))
    ]
    if len(found) == 1:
        raise InvalidSetting(found[0])
    if found:
        raise InvalidSetting(f"{len(found)} settings are invalid: {'; '.join(found)}")
