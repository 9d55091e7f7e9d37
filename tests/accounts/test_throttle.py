"""The login throttle: a known browser is never locked out by others; bursts can't race it."""

from __future__ import annotations

import asyncio

import pytest
from itsdangerous import URLSafeSerializer
from quart import Quart

from flaskr_async.accounts import devices
from flaskr_async.accounts import passwords
from flaskr_async.db import current_database
from tests.helpers import AnyClient
from tests.helpers import add_failures
from tests.helpers import failure_rows
from tests.helpers import set_cookie_of

ATTACKER = ("198.51.100.66", 4000)
ALICE_HOME = ("203.0.113.5", 5000)
ELSEWHERE = ("192.0.2.77", 6000)


async def log_in(
    client: AnyClient,
    address: tuple[str, int],
    password: str = "test",
    username: str = "test",
) -> int:
    """Post the login form from an address; return the status."""
    response = await client.post(
        "/auth/login",
        form={"username": username, "password": password},
        scope_base={"client": address},
    )
    return response.status_code


async def known_browser(app: Quart) -> AnyClient:
    """Return a browser that has logged in as "test" before (and logged out)."""
    client = app.test_client()
    assert await log_in(client, ALICE_HOME) == 302
    await client.post("/auth/logout")
    return client


async def test_failures_from_elsewhere_never_lock_out_a_known_browser(app: Quart) -> None:
    alice = await known_browser(app)
    attacker = app.test_client()
    for _ in range(10):
        assert await log_in(attacker, ATTACKER, "wrong") == 200
    await add_failures(
        app, failure_rows(40, "test", ATTACKER[0])
    )  # 50 failures in all, from one address
    assert await log_in(attacker, ATTACKER) == 429
    # From alice's own address, and even from the attacker's: her browser is known.
    assert await log_in(alice, ALICE_HOME) == 302
    assert await log_in(alice, ATTACKER) == 302


async def test_a_new_browser_meets_the_per_address_rule(app: Quart) -> None:
    await add_failures(app, failure_rows(50, "test", ATTACKER[0]))
    # Another address has made no failures for the username: it may try.
    assert await log_in(app.test_client(), ELSEWHERE) == 302
    # The attacker's address is locked for every unknown browser.
    assert await log_in(app.test_client(), ATTACKER) == 429


async def test_an_account_ceiling_bounds_guessing_from_many_addresses(app: Quart) -> None:
    alice = await known_browser(app)
    for n in range(10):
        await add_failures(app, failure_rows(10, "test", f"198.51.100.{n}"))
    assert await log_in(app.test_client(), ELSEWHERE) == 429  # 100 from unknown browsers
    assert await log_in(alice, ELSEWHERE) == 302


async def test_a_known_browser_has_its_own_limit(app: Quart) -> None:
    alice = await known_browser(app)
    for _ in range(10):
        assert await log_in(alice, ALICE_HOME, "wrong") == 200
    assert await log_in(alice, ALICE_HOME) == 429
    # Its failures lock that browser, not the account: a new browser may still try.
    assert await log_in(app.test_client(), ELSEWHERE) == 302


async def test_a_forged_device_cookie_is_an_unknown_browser(app: Quart) -> None:
    client = app.test_client()
    await add_failures(app, failure_rows(10, "test", ATTACKER[0]))
    for forged in ("not-signed", "W10.invalid", URLSafeSerializer("x" * 32).dumps([])):
        client.set_cookie("localhost", devices.COOKIE_NAME, forged, path="/auth/login")
        assert await log_in(client, ATTACKER) == 429


async def test_the_device_cookie_is_signed_and_kept_to_the_login_path(app: Quart) -> None:
    client = app.test_client()
    response = await client.post("/auth/login", form={"username": "test", "password": "test"})
    cookie = set_cookie_of(response, devices.COOKIE_NAME)
    assert "HttpOnly" in cookie and "Path=/auth/login" in cookie and "SameSite=Lax" in cookie
    async with app.test_request_context("/auth/login"):
        value = cookie.split(";")[0].split("=", 1)[1]
        entries = devices.serializer().loads(value)
    assert [entry[0] for entry in entries] == [devices.name_key("test")]


async def test_a_browser_remembers_a_few_accounts(app: Quart) -> None:
    client = app.test_client()
    async with app.test_request_context("/"):
        many = devices.serializer().dumps(
            [[devices.name_key(f"user{n}"), f"id{n}", 0, 10 + n] for n in range(5)]
        )
    client.set_cookie("localhost", devices.COOKIE_NAME, many, path="/auth/login")
    response = await client.post("/auth/login", form={"username": "test", "password": "test"})
    async with app.test_request_context("/"):
        value = set_cookie_of(response, devices.COOKIE_NAME).split(";")[0].split("=", 1)[1]
        names = [entry[0] for entry in devices.serializer().loads(value)]
    assert names == [
        devices.name_key(name) for name in ("user1", "user2", "user3", "user4", "test")
    ]


async def test_a_browser_known_to_a_twin_account_is_a_stranger(app: Quart) -> None:
    # Migration 7 may leave two accounts whose names share a key ("Straße", "STRASSE"): a
    # browser that logged in as one must not be known to the other.
    client = app.test_client()
    await add_failures(app, failure_rows(10, "test", ATTACKER[0]))
    async with app.test_request_context("/"):
        twin = devices.serializer().dumps([[devices.name_key("test"), "twin-device", 0, 99]])
        own = devices.serializer().dumps([[devices.name_key("test"), "own-device", 0, 1]])
    client.set_cookie("localhost", devices.COOKIE_NAME, twin, path="/auth/login")
    assert await log_in(client, ATTACKER) == 429
    client.set_cookie("localhost", devices.COOKIE_NAME, own, path="/auth/login")
    assert await log_in(client, ATTACKER) == 302


async def test_concurrent_guesses_verify_at_most_the_limit(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real_verify = passwords.verify_sync

    def counting_verify(stored: str | None, password: str) -> tuple[bool, bool]:
        verified.append(password)
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify_sync", counting_verify)
    client = app.test_client()
    statuses = await asyncio.gather(*(log_in(client, ATTACKER, f"wrong {n}") for n in range(40)))
    assert len(verified) == 10
    assert sorted(statuses) == [200] * 10 + [429] * 30
    assert await log_in(client, ATTACKER) == 429


async def test_success_deletes_its_own_reservation(app: Quart) -> None:
    for _ in range(12):
        assert await log_in(app.test_client(), ATTACKER) == 302
    async with app.app_context():
        rows = await current_database().fetch_all("SELECT id FROM login_attempt")
    assert rows == []


async def test_a_signed_cookie_of_another_shape_is_an_unknown_browser(app: Quart) -> None:
    client = app.test_client()
    await add_failures(app, failure_rows(10, "test", ATTACKER[0]))
    async with app.test_request_context("/"):
        shapes = [devices.serializer().dumps(value) for value in ({"test": "x"}, "test", 7)]
        shapes.append(devices.serializer().dumps([["test"], "odd", ["a", "b", "c"]]))
        # As issued before the password change and the user were kept: a stranger now.
        shapes.append(devices.serializer().dumps([[devices.name_key("test"), "an-old-device-id"]]))
        shapes.append(devices.serializer().dumps([[devices.name_key("test"), "device", "0", 1]]))
        # Keyed by the name itself, as issued before the key was its digest: a stranger now.
        shapes.append(devices.serializer().dumps([["test", "own-device", 0, 1]]))
    for value in shapes:
        client.set_cookie("localhost", devices.COOKIE_NAME, value, path="/auth/login")
        assert await log_in(client, ATTACKER) == 429


async def test_the_device_cookie_stays_small_whatever_the_names(app: Quart) -> None:
    """Older names log in at any length: the cookie keeps a digest of each."""
    # Characters that do not repeat, as real names' do not: compression cannot hide them.
    # 800 of 3 bytes: PostgreSQL's unique index on names takes at most 2,704 bytes.
    names = [
        "".join(chr(0x4E00 + (n * 1024 + i) * 7919 % 20000) for i in range(800))
        for n in range(devices.MAX_USERS)
    ]
    async with app.app_context():
        async with current_database().transaction() as tx:
            for name in names:  # as an older database holds them: no key, werkzeug's hash
                await tx.execute(
                    'INSERT INTO "user" (username, password) SELECT ?, password FROM "user"'
                    " WHERE id = 1",
                    (name,),
                )
    client = app.test_client()
    for name in names:
        response = await client.post("/auth/login", form={"username": name, "password": "test"})
        assert response.status_code == 302
        assert len(set_cookie_of(response, devices.COOKIE_NAME)) < 4096
