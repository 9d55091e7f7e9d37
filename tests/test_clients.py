"""One client: an IPv4 address or an IPv6 /64, the same for the login throttle and the streams."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from quart import Quart
from quart.testing import connections

from flaskr_async.clients import client_of
from tests.helpers import serving


@pytest.mark.parametrize(
    ("address", "client"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        # As some proxies write it: with a port, or with white space.
        ("192.0.2.1:4711", "192.0.2.1"),
        ("[2001:db8:1:2::9]:4711", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::9]", "2001:db8:1:2::/64"),
        (" 192.0.2.1 ", "192.0.2.1"),
        # IPv6 addresses that carry an IPv4 client: 6to4 and Teredo.
        ("2002:c000:201:1::1", "192.0.2.1"),
        ("2002:c000:201:ffff::1", "192.0.2.1"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
        # Not an IP address: one client, however it is spelt.
        ("unix-socket-peer", "invalid"),
        ("08.8.8.8", "invalid"),
        ("8.8.8.008", "invalid"),
        ("unknown7", "invalid"),
        ("192.0.2.1:4711:1", "invalid"),
        ("", "invalid"),
        (None, "invalid"),
    ],
)
def test_the_client_of_an_address(address: str | None, client: str) -> None:
    assert client_of(address) == client


ipv6 = st.integers(min_value=0, max_value=2**128 - 1).map(ipaddress.IPv6Address)


def carries_ipv4(address: ipaddress.IPv6Address) -> bool:
    """Tell whether an IPv6 address carries an IPv4 client (mapped, 6to4, Teredo)."""
    return bool(address.ipv4_mapped or address.sixtofour or address.teredo)


@given(ipv6, st.integers(min_value=0, max_value=2**64 - 1))
def test_every_address_of_a_64_is_one_client(address: ipaddress.IPv6Address, host: int) -> None:
    network = int(address) >> 64 << 64
    twin = ipaddress.IPv6Address(network | host)
    if not carries_ipv4(address) and not carries_ipv4(twin):
        written = (str(address), address.exploded, f"[{address}]:443")
        assert {client_of(text) for text in written} == {client_of(str(twin))}


@given(ipv6, ipv6)
def test_addresses_of_different_64s_are_different_clients(
    a: ipaddress.IPv6Address, b: ipaddress.IPv6Address
) -> None:
    if int(a) >> 64 != int(b) >> 64 and not carries_ipv4(a) and not carries_ipv4(b):
        assert client_of(str(a)) != client_of(str(b))


@given(st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address))
def test_an_ipv4_address_is_its_own_client_however_written(address: ipaddress.IPv4Address) -> None:
    assert client_of(str(address)) == client_of(f"::ffff:{address}") == str(address)


def behind_proxy(app_config: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """Return settings for an app behind one trusted proxy, with small per-client limits."""
    return {**app_config, "PROXY_FIX_TRUSTED_HOPS": 1, **settings}


def from_address(address: str) -> dict[str, str]:
    """Return the headers one trusted proxy sets for a client address."""
    return {"X-Forwarded-For": address}


async def test_the_login_throttle_counts_a_64_as_one_address(
    app_config: dict[str, Any],
) -> None:
    config = behind_proxy(app_config, LOGIN_MAX_FAILURES_PER_ADDRESS=3)
    async with serving(config) as app:
        statuses = [
            await failed_login(app, f"user{n}", f"2001:db8:5:6::{n + 1:x}") for n in range(5)
        ]
        # Another /64 is another client.
        other = await failed_login(app, "user9", "2001:db8:5:7::1")
    assert statuses == [200, 200, 200, 429, 429]
    assert other == 200


async def failed_login(app: Quart, username: str, address: str) -> int:
    """Try a wrong password from an address; return the status."""
    response = await app.test_client().post(
        "/auth/login",
        form={"username": username, "password": "wrong password"},
        headers=from_address(address),
    )
    return response.status_code


def stream_from(app: Quart, address: str) -> connections.TestHTTPConnection:
    """Return a test connection asking for the event stream from a client address."""
    connection = app.test_client().request("/events", headers=from_address(address))
    assert isinstance(connection, connections.TestHTTPConnection)
    return connection


async def opened(connection: connections.TestHTTPConnection) -> bool:
    """Send the request; tell whether the stream opened (its retry field arrived)."""
    await connection.send_complete()
    return (await connection.receive()).startswith(b"retry:")


async def test_the_stream_share_counts_a_64_as_one_client(app_config: dict[str, Any]) -> None:
    config = behind_proxy(app_config, LIVE_STREAMS_PER_CLIENT=2)
    async with serving(config) as app:
        one = stream_from(app, "2001:db8:9:9::1")
        two = stream_from(app, "2001:db8:9:9::2")
        elsewhere = stream_from(app, "2001:db8:9:a::1")
        async with one, two, elsewhere:
            assert await opened(one) and await opened(two)
            third = await app.test_client().get("/events", headers=from_address("2001:db8:9:9::ff"))
            assert await opened(elsewhere)  # another /64 is another client
            for connection in (one, two, elsewhere):
                await connection.disconnect()
    assert third.status_code == 503
