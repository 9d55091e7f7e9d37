"""Password hashing off the event loop: argon2id, a cap on concurrent hashes, upgrades.

Passwords are hashed in their RFC 8265 OpaqueString form, so the same password typed in
another Unicode normalization form (or with a no-break space) still matches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec
from typing import TypeVar

from argon2 import Parameters
from argon2 import PasswordHasher
from argon2 import Type
from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from argon2.low_level import ARGON2_VERSION
from quart import Quart
from quart import current_app
from quart.utils import run_sync
from werkzeug.security import check_password_hash

from flaskr_async.identity import NotAllowed
from flaskr_async.identity import canonical_password
from flaskr_async.identity import legacy_password_forms

HASH_SLOTS_KEY = "flaskr_async.password_hash_slots"

# OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane (about 31 MB peak and 170 ms here).
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# Checked when the username is unknown, so that answer costs as much as a wrong password.
# A literal, so that importing the module does not spend a hash's CPU time.
DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$TLTF5BrHftAHbe4v41fFzg$"
    "RHWv9ontcXQbyvNP3LH7bKMoTyVy+sOcMA9KNN7uKp8"
)

P = ParamSpec("P")
T = TypeVar("T")


def install_hash_slots(app: Quart) -> None:
    """Cap the hashes this app runs at once (each holds ~19 MiB and a CPU core)."""
    app.extensions[HASH_SLOTS_KEY] = asyncio.Semaphore(int(app.config["PASSWORD_HASH_CONCURRENCY"]))


async def run_in_hash_slot(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one blocking hash function in a worker thread, under the app's cap."""
    async with current_app.extensions[HASH_SLOTS_KEY]:
        result: T = await run_sync(func)(*args, **kwargs)
    return result


def hashed_forms(password: str) -> list[str]:
    """Return the forms of a password a stored hash may hold, the one to hash now first.

    Today's is the canonical form. Text the repertoire refuses was never registered by this
    version, but an older one hashed it as typed, or normalized on a newer Python: those forms.
    """
    try:
        canonical = canonical_password(password)
    except NotAllowed:
        return legacy_password_forms(password)
    # Hashes made before passwords were normalized hold the text as typed.
    return list(dict.fromkeys([canonical, password]))


def hasher_at_least(stored: str | None) -> PasswordHasher:
    """Return a hasher with today's parameters, or a stored argon2 hash's where stronger.

    Each parameter is the larger of the two, so a rehash never weakens a hash an operator made
    stronger (more memory, passes or lanes) than today's defaults.
    """
    try:
        old = extract_parameters(stored or "")
    except InvalidHashError:  # none, or werkzeug's scrypt/pbkdf2: today's parameters
        return HASHER
    strongest = Parameters(
        type=Type.ID,
        version=max(old.version, ARGON2_VERSION),
        salt_len=max(old.salt_len, HASHER.salt_len),
        hash_len=max(old.hash_len, HASHER.hash_len),
        time_cost=max(old.time_cost, HASHER.time_cost),
        memory_cost=max(old.memory_cost, HASHER.memory_cost),
        parallelism=max(old.parallelism, HASHER.parallelism),
    )
    return PasswordHasher.from_parameters(strongest)


def hash_sync(password: str, at_least: str | None = None) -> str:
    """Hash a password's canonical form, at least as strongly as the hash ``at_least``."""
    return hasher_at_least(at_least).hash(hashed_forms(password)[0])


def verify_sync(stored: str | None, password: str) -> tuple[bool, bool]:
    """Check a password against a stored hash: (matches, should be rehashed).

    The form hashed today is checked first; when it fails and the password has another form an
    older hash may hold (rare: non-ASCII input), that is checked too, and a match asks for a
    rehash. An unknown user pays for the same checks, so timing tells nothing.
    """
    forms = hashed_forms(password)
    hashed = DUMMY_HASH if stored is None else stored
    matches, outdated = check_hash(hashed, forms[0])
    if not matches and len(forms) > 1:
        matches, outdated = check_hash(hashed, forms[1])[0], True
    matches = matches and stored is not None
    return matches, matches and outdated


def check_hash(stored: str, password: str) -> tuple[bool, bool]:
    """Check one candidate against a stored hash: (matches, weaker than today's parameters)."""
    if stored.startswith("$argon2"):
        return verify_argon2(stored, password), weaker_than_today(stored)
    # Hashes made by werkzeug (Flaskr's scrypt/pbkdf2) are accepted, then upgraded.
    return check_password_hash(stored, password), True


def weaker_than_today(stored: str) -> bool:
    """Tell whether rehashing an argon2 hash would strengthen it (never only to change it)."""
    try:
        return hasher_at_least(stored).check_needs_rehash(stored)
    except InvalidHashError:
        return True


def verify_argon2(stored: str, password: str) -> bool:
    """Check a password against an argon2 hash."""
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str, at_least: str | None = None) -> str:
    """Hash a password off the event loop, at least as strongly as the hash ``at_least``."""
    return await run_in_hash_slot(hash_sync, password, at_least)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """Check a password off the event loop; a None hash costs the same as a wrong one."""
    return await run_in_hash_slot(verify_sync, stored, password)
