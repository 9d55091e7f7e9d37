"""Password hashing off the event loop: argon2id, a cap on concurrent hashes, upgrades.

Passwords are hashed in their RFC 8265 OpaqueString form, so the same password typed in
another Unicode normalization form (or with a no-break space) still matches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from quart import Quart
from quart import current_app
from quart.utils import run_sync
from werkzeug.security import check_password_hash

from flaskr_async.identity import NotAllowed
from flaskr_async.identity import canonical_password

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


def hash_sync(password: str) -> str:
    """Hash a password's canonical form with the current parameters."""
    return HASHER.hash(canonical_password(password))


def verify_sync(stored: str | None, password: str) -> tuple[bool, bool]:
    """Check a password against a stored hash: (matches, should be rehashed).

    Hashes made before passwords were normalized hold the text as typed: when the canonical
    form fails and differs from it (rare: non-ASCII input), the text as typed is tried too and
    a match asks for a rehash. An unknown user pays for the same checks, so timing tells nothing.
    """
    try:
        normalized = canonical_password(password)
    except NotAllowed:
        # Registration refuses such text (a control character, say), so no current hash can
        # match; skipping the hash tells nothing, as the refusal depends on the input alone.
        return False, False
    hashed = DUMMY_HASH if stored is None else stored
    matches, outdated = check_hash(hashed, normalized)
    if not matches and normalized != password:
        matches, outdated = check_hash(hashed, password)[0], True
    matches = matches and stored is not None
    return matches, matches and outdated


def check_hash(stored: str, password: str) -> tuple[bool, bool]:
    """Check one candidate against a stored hash: (matches, should be rehashed)."""
    if stored.startswith("$argon2"):
        return verify_argon2(stored, password), HASHER.check_needs_rehash(stored)
    # Hashes made by werkzeug (Flaskr's scrypt/pbkdf2) are accepted, then upgraded.
    return check_password_hash(stored, password), True


def verify_argon2(stored: str, password: str) -> bool:
    """Check a password against an argon2 hash."""
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    """Hash a password off the event loop."""
    return await run_in_hash_slot(hash_sync, password)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """Check a password off the event loop; a None hash costs the same as a wrong one."""
    return await run_in_hash_slot(verify_sync, stored, password)
