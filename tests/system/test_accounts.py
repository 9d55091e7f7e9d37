"""Account self-service through two real hypercorn hosts on one database (both backends)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Server
from tests.visitors import Visitor
from tests.visitors import two_hosts

pytestmark = pytest.mark.system

ALICE = {"username": "alice", "password": "correct horse"}
CHANGE = {"current_password": "correct horse", "new_password": "battery staple"}
WRONG = {**CHANGE, "current_password": "not the password"}


@pytest.fixture
def hosts(database_url: str) -> Iterator[tuple[Server, Server]]:
    """Serve two hosts on the test database, with alice registered."""
    with two_hosts(database_url) as (a, b):
        visitor = Visitor()
        assert visitor.submit(a.url + "/auth/register", ALICE).status_code == 302
        visitor.close()
        yield a, b


@pytest.fixture
def browsers() -> Iterator[list[Visitor]]:
    """Return three browsers (each keeps its device cookie), closed after the test."""
    visitors = [Visitor(f"Browser/{n}", keep_device=True) for n in range(3)]
    yield visitors
    for visitor in visitors:
        visitor.close()


def logged_in(visitor: Visitor, host: Server) -> bool:
    """Tell whether the visitor's session is a logged-in user's on that host."""
    return "Log Out" in visitor.request("GET", host.url + "/").text


def log_in(visitor: Visitor, host: Server, password: str = "correct horse") -> int:
    """Log in as alice on one host; return the status."""
    form = {**ALICE, "password": password}
    return visitor.submit(host.url + "/auth/login", form).status_code


def log_in_afresh(host: Server, password: str = "correct horse") -> int:
    """Log in as alice from a new browser; return the status."""
    visitor = Visitor()
    try:
        return log_in(visitor, host, password)
    finally:
        visitor.close()


def test_a_password_change_ends_every_other_session_on_every_host(
    hosts: tuple[Server, Server], browsers: list[Visitor]
) -> None:
    a, b = hosts
    this, other, thief = browsers
    assert log_in(this, a) == log_in(other, b) == 302
    thief.session = other.session  # a stolen copy of the other browser's cookie

    changed = this.submit(b.url + "/auth/password", CHANGE)

    assert changed.status_code == 302
    assert changed.headers["location"] == "/"
    assert "Your password was changed." in this.request("GET", a.url + "/").text
    for host in (a, b):
        assert logged_in(this, host)
        assert not logged_in(other, host)
        assert not logged_in(thief, host)
    assert log_in_afresh(a, "correct horse") == 200
    assert log_in_afresh(b, "battery staple") == 302


def test_a_wrong_current_password_is_a_throttled_failed_login(
    hosts: tuple[Server, Server], browsers: list[Visitor]
) -> None:
    a, b = hosts
    this = browsers[0]
    assert log_in(this, a) == 302
    for n in range(10):  # the session's own allowance, counted on every host
        wrong = this.submit((a, b)[n % 2].url + "/auth/password", WRONG)
        assert wrong.status_code == 200
        assert "Incorrect password." in wrong.text

    for host in (a, b):
        refused = this.submit(host.url + "/auth/password", CHANGE)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
    # A stranger at this address is throttled now; this known browser is not, and the old
    # password still logs it in: nothing changed.
    assert log_in_afresh(b) == 429
    assert log_in(this, a) == 302


def test_ending_the_other_sessions_on_one_host_ends_them_on_every_host(
    hosts: tuple[Server, Server], browsers: list[Visitor]
) -> None:
    a, b = hosts
    this, other, _ = browsers
    assert log_in(this, a) == log_in(other, b) == 302
    page = this.request("GET", b.url + "/auth/sessions").text
    assert "<bdi>Browser/0</bdi> <strong>(this browser)</strong>" in page and "Browser/1" in page

    ended = this.submit(b.url + "/auth/sessions", {}, action=b.url + "/auth/sessions/end-others")

    assert ended.status_code == 302
    assert ended.headers["location"] == "/auth/sessions"
    page = this.request("GET", a.url + "/auth/sessions").text
    assert "Your other sessions were ended." in page
    assert "Browser/1" not in page
    for host in (a, b):
        assert logged_in(this, host)
        assert not logged_in(other, host)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/password"),
        ("POST", "/auth/password"),
        ("GET", "/auth/sessions"),
        ("POST", "/auth/sessions/end-others"),
    ],
)
def test_anonymous_and_forged_requests_are_refused(
    hosts: tuple[Server, Server], browsers: list[Visitor], method: str, path: str
) -> None:
    a, _ = hosts
    anonymous, this, _ = browsers
    if method == "GET":
        response = anonymous.request(method, a.url + path)
        assert response.status_code == 302
        assert response.headers["location"] == "/auth/login"
    else:  # an anonymous session's own token gets the same redirect
        form = CHANGE if path == "/auth/password" else {}
        response = anonymous.submit(a.url + "/auth/login", form, action=a.url + path)
        assert response.status_code == 302
        assert response.headers["location"] == "/auth/login"
        # Logged in, without the CSRF token: refused, and nothing ends.
        assert log_in(this, a) == 302
        assert this.request("POST", a.url + path, form).status_code == 400
        assert logged_in(this, a)
        assert log_in_afresh(a) == 302  # the password is unchanged


def test_a_change_forgets_the_browsers_known_before(
    hosts: tuple[Server, Server], browsers: list[Visitor]
) -> None:
    a, b = hosts
    this, known, stranger = browsers
    assert log_in(known, a) == 302  # a thief's browser, say: it has the device cookie now
    assert log_in(this, a) == 302
    assert known.device and this.device
    for _ in range(10):  # a stranger at the same address fills the username's allowance
        assert log_in(stranger, b, "wrong password") == 200
    assert log_in(stranger, b) == 429
    assert log_in(known, b) == 302  # a known browser: failures made elsewhere do not count

    assert this.submit(a.url + "/auth/password", CHANGE).status_code == 302

    assert log_in(known, b, "battery staple") == 429  # a stranger now: the rules for strangers
    this.submit(a.url + "/", {}, action=a.url + "/auth/logout")
    assert log_in(this, b, "battery staple") == 302  # the browser that changed it stays known
