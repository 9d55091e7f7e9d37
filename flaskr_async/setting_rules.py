"""Settings that are each valid alone but cannot work together, all in one table (RULES).

``settings.check`` applies a rule once every setting it reads has passed its own check, and
words its message with each value and where it came from. A bound on one setting alone (such
as ``MAX_CONTENT_LENGTH``'s, which the largest form needs) is that setting's, in SETTINGS.

Examined and allowed, because each still works (the stricter setting simply wins):
``SESSION_IDLE_TIMEOUT`` or ``WTF_CSRF_TIME_LIMIT`` past ``PERMANENT_SESSION_LIFETIME``; the
login limits in any order; ``LIVE_HISTORY`` against ``LIVE_QUEUE_SIZE`` (a page past either
reloads); the live intervals against each other; ``DATABASE_POOL_SIZE`` (no stream or hash
holds a pooled connection); ``SECRET_KEY`` repeated in ``SECRET_KEY_FALLBACKS``; ``SQLITE_*``
with PostgreSQL (ignored); proxy hops with loopback-only ``TRUSTED_HOSTS`` (a local proxy
serving a loopback name works, and any other name gets a 400 that says why).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """Settings whose values conflict: when, why that cannot work, and the fix."""

    reads: tuple[str, ...]  # named in the message, in this order
    conflict: Callable[[Mapping[str, Any]], bool]  # given the config, each value valid alone
    why: str
    fix: str


def relaxed(config: Mapping[str, Any]) -> bool:
    """Tell whether the app debugs or tests, which accepts any key (a flag must be a real bool)."""
    return config.get("DEBUG") is True or config.get("TESTING") is True


def secure_cookie(config: Mapping[str, Any]) -> bool:
    """Tell whether the cookies are Secure: SESSION_COOKIE_SECURE, or null: unless relaxed."""
    secure = config["SESSION_COOKIE_SECURE"]
    return not relaxed(config) if secure is None else bool(secure)


def cross_site(config: Mapping[str, Any]) -> bool:
    """Tell whether the cookies are sent with requests from other sites (SameSite=None)."""
    return str(config["SESSION_COOKIE_SAMESITE"]).upper() == "NONE"


def fair_share(share: int, total: int) -> int:
    """Return the most of a total one client may hold: below the total, unless the total is 1."""
    return share if total <= 1 else min(share, total - 1)


RULES = (
    Rule(
        ("SESSION_COOKIE_SAMESITE", "SESSION_COOKIE_SECURE"),
        lambda config: cross_site(config) and not secure_cookie(config),
        "browsers drop a SameSite=None cookie that is not Secure (null is not Secure when"
        " debugging or testing), so no login would last and no form would pass its CSRF check",
        "set SESSION_COOKIE_SECURE to true (served over HTTPS, or on localhost) or"
        " SESSION_COOKIE_SAMESITE to Lax",
    ),
    Rule(
        ("SESSION_COOKIE_SAMESITE", "WTF_CSRF_ENABLED"),
        lambda config: cross_site(config) and config.get("WTF_CSRF_ENABLED") is False,
        "with neither SameSite nor CSRF tokens, a page on any other site could send this site's"
        " forms as its logged-in visitor",
        "set WTF_CSRF_ENABLED to true (or leave it out) or SESSION_COOKIE_SAMESITE to Lax",
    ),
    # With one stream in all there is no share to keep: any value of the share works.
    Rule(
        ("LIVE_STREAMS_PER_CLIENT", "LIVE_MAX_STREAMS"),
        # live/__init__.py applies the same cut when the open-file limit lowers the total.
        lambda config: (
            fair_share(config["LIVE_STREAMS_PER_CLIENT"], config["LIVE_MAX_STREAMS"])
            != config["LIVE_STREAMS_PER_CLIENT"]
        ),
        "one client could hold every live stream of a worker, and every other page would get"
        " 503 (the share per client must be below the total)",
        "set LIVE_STREAMS_PER_CLIENT below LIVE_MAX_STREAMS",
    ),
)
