"""Several hosts on one PostgreSQL: two real hypercorn processes behind one client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.servers import Server
from tests.servers import stored_titles
from tests.visitors import Visitor
from tests.visitors import register_and_log_in
from tests.visitors import two_hosts

pytestmark = pytest.mark.postgresql_only


@pytest.fixture
def visitor() -> Iterator[Visitor]:
    """Return a visitor, closed after the test."""
    visitor = Visitor()
    yield visitor
    visitor.close()


def test_one_session_and_one_blog_across_hosts(database_url: str, visitor: Visitor) -> None:
    with two_hosts(database_url) as (a, b):
        register_and_log_in(visitor, a, b)
        # The session made on B is valid on A: the nav shows the user there.
        assert "alice" in visitor.request("GET", a.url + "/").text
        created = visitor.submit(a.url + "/create", {"title": "written on A", "body": ""})
        assert created.headers["location"] == "/"
        assert "written on A" in visitor.request("GET", b.url + "/").text
        logout = visitor.submit(b.url + "/", {}, action=b.url + "/auth/logout")
        assert logout.status_code == 302
        assert "Log In" in visitor.request("GET", a.url + "/").text


def test_throttling_counts_failures_on_every_host(database_url: str, visitor: Visitor) -> None:
    with two_hosts(database_url) as (a, b):
        register_and_log_in(visitor, a, b)
        wrong = {"username": "alice", "password": "wrong password"}
        for n in range(10):
            host = (a, b)[n % 2]
            assert visitor.submit(host.url + "/auth/login", wrong).status_code == 200
        right = {"username": "alice", "password": "correct horse"}
        for host in (a, b):
            refused = visitor.submit(host.url + "/auth/login", right)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) > 0


def create_stream(
    visitor: Visitor, a: Server, b: Server, prefix: str, count: int, started: threading.Event
) -> set[str]:
    """Create posts alternating between the hosts, on B alone once A stops answering."""
    acknowledged, a_alive = set(), True
    for n in range(count):
        if n == count // 4:
            started.set()
        title = f"{prefix} {n}"
        host = a if a_alive and n % 2 == 0 else b
        try:
            response = visitor.submit(host.url + "/create", {"title": title, "body": ""})
        except httpx.TransportError:
            a_alive = False  # A died under this request: it was never acknowledged
            continue
        if response.status_code == 302:
            acknowledged.add(title)
    return acknowledged


async def test_killing_a_host_loses_no_acknowledged_write(
    database_url: str, visitor: Visitor
) -> None:
    with two_hosts(database_url) as (a, b):
        register_and_log_in(visitor, a, b)
        visitors = [Visitor() for _ in range(4)]
        for other in visitors:
            other.session = visitor.session
        try:
            with ThreadPoolExecutor(len(visitors)) as pool:
                started = threading.Event()
                streams = [
                    pool.submit(create_stream, other, a, b, f"stream {n}", 40, started)
                    for n, other in enumerate(visitors)
                ]
                started.wait(30)
                a.kill()  # host A dies with requests in flight
                acknowledged = set().union(*(stream.result() for stream in streams))
        finally:
            for other in visitors:
                other.close()
        assert a.process.returncode == -9
    print(f"multi-host: 160 creates sent, {len(acknowledged)} acknowledged, all present")
    assert 100 <= len(acknowledged) < 160  # some died with A; most succeeded, on B after
    assert acknowledged <= set(await stored_titles(database_url))
