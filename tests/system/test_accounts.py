"""Account self-service through two real hypercorn hosts on one database (both backends)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.postgres_server import scratch_database
from tests.servers import Server
from tests.visitors import Visitor
from tests.visitors import two_hosts

pytestmark = pytest.mark.system

PASSWORD = "correct horse"
CHANGE = {"current_password": PASSWORD, "new_password": "battery staple"}
WRONG = {**CHANGE, "current_password": "not the password"}


class SharedHosts:
    """Two hosts on one database per backend, started for the first test that asks, kept for all.

    Two server starts cost more CPU than any test here. Sharing them keeps each test apart
    by an account of its own, and a client address of its own (127.0.0.x), so that no test
    meets another's sessions or failed logins.
    """

    def __init__(self, request: pytest.FixtureRequest, stack: ExitStack) -> None:
        self.request = request
        self.stack = stack
        self.pairs: dict[str, tuple[Server, Server]] = {}
        self.clients = itertools.count(10)

    def of(self, backend: str) -> tuple[Server, Server]:
        """Return the backend's two hosts, starting them at the first call."""
        if backend not in self.pairs:
            if backend == "sqlite":
                folder = self.request.getfixturevalue("tmp_path_factory").mktemp("accounts")
                database = str(folder / "flaskr.sqlite")
            else:
                server = self.request.getfixturevalue("postgres_server")
                database = self.stack.enter_context(scratch_database(server))
            self.pairs[backend] = self.stack.enter_context(two_hosts(database))
        return self.pairs[backend]

    def next_address(self) -> str:
        """Return a loopback address no other test of the module connects from."""
        return f"127.0.0.{next(self.clients)}"


@pytest.fixture(scope="module")
def shared_hosts(request: pytest.FixtureRequest) -> Iterator[SharedHosts]:
    """Return the module's hosts, stopped (and their databases dropped) after its last test."""
    with ExitStack() as stack:
        yield SharedHosts(request, stack)


@dataclass
class Account:
    """One test's user: a name no other test registers, and the address its browsers use."""

    username: str
    address: str

    def credentials(self, password: str = PASSWORD) -> dict[str, str]:
        """Return the login form's fields."""
        return {"username": self.username, "password": password}

    def browser(self, user_agent: str = "Visitor/1.0", keep_device: bool = False) -> Visitor:
        """Return a new browser of this test's client."""
        return Visitor(user_agent, keep_device, self.address)


@pytest.fixture
def hosts(shared_hosts: SharedHosts, backend: str) -> tuple[Server, Server]:
    """Return the two hosts of the backend under test."""
    return shared_hosts.of(backend)


@pytest.fixture
def alice(hosts: tuple[Server, Server], shared_hosts: SharedHosts) -> Iterator[Account]:
    """Register this test's user on host A."""
    account = Account(f"alice{uuid.uuid4().hex[:12]}", shared_hosts.next_address())
    visitor = account.browser()
    assert visitor.submit(hosts[0].url + "/auth/register", account.credentials()).status_code == 302
    visitor.close()
    yield account


@pytest.fixture
def browsers(alice: Account) -> Iterator[list[Visitor]]:
    """Return three browsers (each keeps its device cookie), closed after the test."""
    visitors = [alice.browser(f"Browser/{n}", keep_device=True) for n in range(3)]
    yield visitors
    for visitor in visitors:
        visitor.close()


def logged_in(visitor: Visitor, host: Server) -> bool:
    """Tell whether the visitor's session is a logged-in user's on that host."""
    return "Log Out" in visitor.request("GET", host.url + "/").text


def log_in(visitor: Visitor, host: Server, alice: Account, password: str = PASSWORD) -> int:
    """Log in as alice on one host; return the status."""
    return visitor.submit(host.url + "/auth/login", alice.credentials(password)).status_code


def log_in_afresh(host: Server, alice: Account, password: str = PASSWORD) -> int:
    """Log in as alice from a new browser; return the status."""
    visitor = alice.browser()
    try:
        return log_in(visitor, host, alice, password)
    finally:
        visitor.close()


def test_a_password_change_ends_every_other_session_on_every_host(
    hosts: tuple[Server, Server], browsers: list[Visitor], alice: Account
) -> None:
    a, b = hosts
    this, other, thief = browsers
    assert log_in(this, a, alice) == log_in(other, b, alice) == 302
    thief.session = other.session  # a stolen copy of the other browser's cookie

    changed = this.submit(b.url + "/auth/password", CHANGE)

    assert changed.status_code == 302
    assert changed.headers["location"] == "/"
    assert "Your password was changed." in this.request("GET", a.url + "/").text
    for host in (a, b):
        assert logged_in(this, host)
        assert not logged_in(other, host)
        assert not logged_in(thief, host)
    assert log_in_afresh(a, alice, "correct horse") == 200
    assert log_in_afresh(b, alice, "battery staple") == 302


def test_a_wrong_current_password_is_a_throttled_failed_login(
    hosts: tuple[Server, Server], browsers: list[Visitor], alice: Account
) -> None:
    a, b = hosts
    this = browsers[0]
    assert log_in(this, a, alice) == 302
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
    assert log_in_afresh(b, alice) == 429
    assert log_in(this, a, alice) == 302


def test_ending_the_other_sessions_on_one_host_ends_them_on_every_host(
    hosts: tuple[Server, Server], browsers: list[Visitor], alice: Account
) -> None:
    a, b = hosts
    this, other, _ = browsers
    assert log_in(this, a, alice) == log_in(other, b, alice) == 302
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
    hosts: tuple[Server, Server], browsers: list[Visitor], alice: Account, method: str, path: str
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
        assert log_in(this, a, alice) == 302
        assert this.request("POST", a.url + path, form).status_code == 400
        assert logged_in(this, a)
        assert log_in_afresh(a, alice) == 302  # the password is unchanged


def test_a_change_forgets_the_browsers_known_before(
    hosts: tuple[Server, Server], browsers: list[Visitor], alice: Account
) -> None:
    a, b = hosts
    this, known, stranger = browsers
    assert log_in(known, a, alice) == 302  # a thief's browser, say: it has the device cookie now
    assert log_in(this, a, alice) == 302
    assert known.device and this.device
    for _ in range(10):  # a stranger at the same address fills the username's allowance
        assert log_in(stranger, b, alice, "wrong password") == 200
    assert log_in(stranger, b, alice) == 429
    assert log_in(known, b, alice) == 302  # a known browser: failures made elsewhere do not count

    assert this.submit(a.url + "/auth/password", CHANGE).status_code == 302

    # The known browser is a stranger now: the rules for strangers.
    assert log_in(known, b, alice, "battery staple") == 429
    this.submit(a.url + "/", {}, action=a.url + "/auth/logout")
    # The browser that changed it stays known.
    assert log_in(this, b, alice, "battery staple") == 302
