"""End to end in a real browser: Chromium, driven by Playwright, against a real hypercorn."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

import flaskr_async
from tests.servers import ARTIFACTS
from tests.servers import Server
from tests.servers import free_port
from tests.servers import hypercorn_command
from tests.servers import running
from tests.servers import server_env

try:
    from playwright.sync_api import Browser
    from playwright.sync_api import ConsoleMessage
    from playwright.sync_api import Dialog
    from playwright.sync_api import Locator
    from playwright.sync_api import Page
    from playwright.sync_api import Request
    from playwright.sync_api import expect
    from playwright.sync_api import sync_playwright

    from tests.accessibility import axe_violations
except ImportError:  # the browser fixture skips (or fails, on CI) and says why
    pass

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads a browser here
TIMEOUT_MS = 5_000  # every wait is bounded: a broken page fails in seconds, not minutes
CONFIRM_DELETE = "Delete this post? This cannot be undone."


def require_browser() -> None:
    """Skip without Chromium or Playwright, except on CI, where a skip would hide the test."""
    missing = [
        name
        for name, present in (
            (f"Chromium ({CHROMIUM})", CHROMIUM.exists()),
            ("the playwright package", importlib.util.find_spec("playwright") is not None),
            ("axe-core", importlib.util.find_spec("axe_playwright_python") is not None),
        )
        if not present
    ]
    if missing:
        message = (
            f"browser tests need {' and '.join(missing)} (make system-deps; pip install -e .[dev])"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Launch one headless Chromium for the module's tests."""
    require_browser()
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless=new"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Serve the app with hypercorn on a fresh SQLite database."""
    port = free_port()
    with running(hypercorn_command(port), server_env(tmp_path / "flaskr.sqlite"), port) as server:
        yield server


class Tab:
    """A browser page that records console errors and the dialogs it was shown."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.accept_dialogs = True
        page.set_default_timeout(TIMEOUT_MS)
        # A CSP violation reaches the console as an error; an uncaught exception does not.
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("dialog", self.on_dialog)

    def on_console(self, message: ConsoleMessage) -> None:
        """Keep the text of every console error."""
        if message.type == "error":
            self.errors.append(f"{message.text} at {message.location['url']}")

    def on_dialog(self, dialog: Dialog) -> None:
        """Answer a confirm() as told, keeping its message."""
        self.dialogs.append(dialog.message)
        if self.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    """Open a page in a fresh browser context (no cookies), closed after the test."""
    context = browser.new_context()
    try:
        yield Tab(context.new_page())
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot into test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def screenshot_on_failure(tab: Tab, name: str) -> Iterator[None]:
    """Save what the browser showed when a step failed, then let the failure through."""
    try:
        yield
    except BaseException:
        # A dead browser cannot take a picture; the original failure matters more.
        with contextlib.suppress(Exception):
            print(f"screenshot of the failure: {screenshot(tab.page, name)}")
        raise


def fill_and_submit(page: Page, fields: dict[str, str], button: str) -> None:
    """Fill a form's fields by label, then press its submit button."""
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name=button, exact=True).click()


def register_and_log_in(page: Page, url: str, username: str, password: str) -> None:
    """Register through the nav link, fail one login, then log in."""
    page.goto(url + "/")
    expect(page.get_by_text("No posts yet.")).to_be_visible()
    page.get_by_role("link", name="Register").click()
    fill_and_submit(page, {"Username": username, "Password": password}, "Register")
    expect(page).to_have_url(url + "/auth/login")

    fill_and_submit(page, {"Username": username, "Password": "not the password"}, "Log In")
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    expect(page.get_by_role("button", name="Log Out")).to_have_count(0)

    fill_and_submit(page, {"Username": username, "Password": password}, "Log In")
    expect(page).to_have_url(url + "/")
    expect(page.locator("nav")).to_contain_text(username)


def create_and_edit_a_post(page: Page, url: str) -> None:
    """Write a post, see it on the index, then retitle it."""
    page.get_by_role("link", name="New").click()
    fill_and_submit(page, {"Title": "Hello from Chromium", "Body": "Typed in a browser."}, "Save")
    expect(page).to_have_url(url + "/")
    post = page.locator("article")
    expect(post).to_have_count(1)
    expect(post.locator("h2")).to_have_text("Hello from Chromium")
    expect(post.locator(".body")).to_have_text("Typed in a browser.")
    print(f"screenshot of the index with the post: {screenshot(page, 'browser-index-with-post')}")

    post.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Title", exact=True)).to_have_value("Hello from Chromium")
    fill_and_submit(page, {"Title": "Edited in Chromium"}, "Save")
    expect(page).to_have_url(url + "/")
    expect(page.locator("article h2")).to_have_text(["Edited in Chromium"])


def delete_the_post(tab: Tab, url: str) -> None:
    """Cancel the delete at the confirm dialog, then confirm it."""
    page = tab.page
    page.locator("article").get_by_role("link", name="Edit").click()
    update_url = page.url
    tab.accept_dialogs = False
    page.get_by_role("button", name="Delete").click()
    # Dismissed: confirm.js stopped the submission, so the page and the post stay.
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    assert page.url == update_url
    tab.accept_dialogs = True
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(url + "/")
    expect(page.get_by_text("No posts yet.")).to_be_visible()
    assert tab.dialogs == [CONFIRM_DELETE, CONFIRM_DELETE]


def test_a_visitor_writes_edits_and_deletes_a_post(
    tab: Tab, server: Server, request: pytest.FixtureRequest
) -> None:
    page, url = tab.page, server.url
    with screenshot_on_failure(tab, request.node.name):
        register_and_log_in(page, url, "chromium", "a long browser password")
        create_and_edit_a_post(page, url)
        delete_the_post(tab, url)
        page.get_by_role("button", name="Log Out").click()
        expect(page).to_have_url(url + "/")
        expect(page.get_by_role("link", name="Log In")).to_be_visible()
        expect(page.locator("nav")).not_to_contain_text("chromium")
        # The strict Content-Security-Policy blocked nothing the pages use.
        assert tab.errors == []


def test_the_console_check_sees_a_csp_violation(
    tab: Tab, server: Server, request: pytest.FixtureRequest
) -> None:
    """Prove the check above can fail: inline script is refused, and the refusal is seen."""
    page = tab.page
    with screenshot_on_failure(tab, request.node.name):
        page.goto(server.url + "/")
        with page.expect_console_message(lambda message: message.type == "error"):
            page.evaluate(
                """() => {
                    const script = document.createElement("script");
                    script.textContent = "window.inlineScriptRan = true";
                    document.head.append(script);
                }"""
            )
        assert page.evaluate("() => window.inlineScriptRan") is None
        assert any("Content Security Policy" in error for error in tab.errors), tab.errors


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Server]:
    """Serve the app with quick change checks, on a fresh SQLite database."""
    port = free_port()
    env = server_env(tmp_path / "flaskr.sqlite", LIVE_POLL_INTERVAL="0.1")
    command = hypercorn_command(port, "--graceful-timeout", "1")
    with running(command, env, port) as server:
        yield server


def edit_link(page: Page, title: str) -> Locator:
    """Return the Edit link of the post with this title."""
    return page.locator("article", has_text=title).get_by_role("link", name="Edit")


def test_an_open_index_hears_of_new_edited_and_deleted_posts(
    browser: Browser, live_server: Server, request: pytest.FixtureRequest
) -> None:
    url = live_server.url
    writer_context, reader_context = browser.new_context(), browser.new_context()
    try:
        writer, reader = Tab(writer_context.new_page()), Tab(reader_context.new_page())
        with screenshot_on_failure(reader, request.node.name):
            register_and_log_in(writer.page, url, "writer", "a long browser password")
            writer.page.get_by_role("link", name="New").click()
            fill_and_submit(writer.page, {"Title": "First", "Body": "One."}, "Save")
            reader.page.goto(url + "/")
            expect(reader.page.locator("article h2")).to_have_text(["First"])

            # A new post: the open page offers it without reloading itself.
            writer.page.get_by_role("link", name="New").click()
            fill_and_submit(writer.page, {"Title": "Second", "Body": "Two."}, "Save")
            # A live region around the link announces it; the link keeps its own name.
            notice = reader.page.get_by_role("link", name="1 new post")
            expect(reader.page.get_by_role("status")).to_have_text("1 new post")
            expect(notice).to_have_attribute("href", "/")
            expect(reader.page.locator("article")).to_have_count(1)

            # An edit marks the post; its new text waits for a reload.
            edit_link(writer.page, "First").click()
            fill_and_submit(writer.page, {"Title": "<b>Edited</b>", "Body": "Now two."}, "Save")
            post = reader.page.locator("article").first
            expect(post.locator(".live-mark")).to_have_text("This post was edited.")
            expect(post.locator(".about")).to_have_text(re.compile(r" \(edited\)$"))
            expect(post).to_have_class(re.compile(r"\bupdated\b"))
            expect(post.locator("h2")).to_have_text("First")

            # A deletion marks the post removed.
            edit_link(writer.page, "<b>Edited</b>").click()
            writer.page.get_by_role("button", name="Delete").click()
            expect(post).to_contain_text("This post was deleted.")
            expect(post).to_have_class(re.compile(r"\bdeleted\b"))
            print(f"screenshot of the live index: {screenshot(reader.page, 'browser-live-index')}")

            notice.click()
            expect(reader.page.locator("article h2")).to_have_text(["Second"])
            assert reader.errors == [] and writer.errors == []
    finally:
        writer_context.close()
        reader_context.close()


def test_the_index_tabs_of_a_browser_share_one_stream(
    browser: Browser, live_server: Server, request: pytest.FixtureRequest
) -> None:
    """Eight index tabs hold one stream between them, so a ninth page of the site still loads.

    Over HTTP/1.1 (the test server's) Chromium opens at most 6 connections to a host: a stream
    per tab would leave the 7th tab waiting for its page.
    """
    url = live_server.url
    writer_context, reader_context = browser.new_context(), browser.new_context()
    sent: list[Request] = []
    # A lambda: Playwright tags its handlers, which a builtin method cannot take.
    reader_context.on("request", lambda stream: sent.append(stream))

    def streams() -> list[Request]:
        """Return the requests the reader's tabs opened event streams with."""
        return [stream for stream in sent if urlsplit(stream.url).path == "/events"]

    def since(stream: Request) -> int:
        """Return the event a stream resumed after."""
        return int(parse_qs(urlsplit(stream.url).query)["since"][0])

    try:
        writer = Tab(writer_context.new_page())
        register_and_log_in(writer.page, url, "writer", "a long browser password")
        started = time.monotonic()
        tabs = [Tab(reader_context.new_page()) for _ in range(8)]
        for tab in tabs:
            with screenshot_on_failure(tab, request.node.name):
                tab.page.goto(url + "/")
                expect(tab.page.get_by_text("No posts yet.")).to_be_visible()
        loaded = time.monotonic()
        other = Tab(reader_context.new_page())
        other.page.goto(url + "/auth/login")
        expect(other.page.get_by_role("heading", name="Log In")).to_be_visible()
        ninth = time.monotonic()

        writer.page.get_by_role("link", name="New").click()
        fill_and_submit(writer.page, {"Title": "One", "Body": "1."}, "Save")
        for tab in tabs:
            expect(tab.page.get_by_role("link", name="1 new post")).to_be_visible()
            expect(tab.page.get_by_text("No posts yet.")).to_be_hidden()
        heard = time.monotonic()
        # One stream, and seven tabs heard of the post through it.
        assert len(streams()) == 1, [stream.url for stream in streams()]
        leader = next(tab for tab in tabs if tab.page == streams()[0].frame.page)
        followers = [tab for tab in tabs if tab is not leader]
        assert leader.errors == []

        leader.page.close()
        closed = time.monotonic()
        writer.page.get_by_role("link", name="New").click()
        fill_and_submit(writer.page, {"Title": "Two", "Body": "2."}, "Save")
        for tab in followers:
            expect(tab.page.get_by_role("link", name="2 new posts")).to_be_visible()
        # A follower took over, resuming after the one event it was relayed (post One's).
        first, second = streams()
        assert second.frame.page in [tab.page for tab in followers]
        assert since(second) == since(first) + 1
        print(
            f"8 index tabs loaded in {loaded - started:.2f} s, then a 9th page in"
            f" {ninth - loaded:.2f} s; post One reached all 8 through 1 stream"
            f" {heard - ninth:.2f} s after the writer began it; with the leader closed,"
            f" post Two reached the other 7 in {time.monotonic() - closed:.2f} s"
        )
        assert all(tab.errors == [] for tab in [*followers, other, writer])
    finally:
        writer_context.close()
        reader_context.close()


TEMPLATES = Path(flaskr_async.__file__).parent / "templates"


class Audit:
    """axe-core's findings on each page shown to it, and the templates those pages came from."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.templates: set[str] = set()
        self.pages = 0

    def __call__(self, page: Page, name: str, template: str) -> None:
        """Run axe-core on the page as it is now, noting what it finds."""
        self.found += axe_violations(page, name)
        self.templates.add(template)
        self.pages += 1


@pytest.fixture
def paged_live_server(tmp_path: Path) -> Iterator[Server]:
    """Serve the app live (quick change checks) with one post a page, on a fresh SQLite file."""
    port = free_port()
    env = server_env(tmp_path / "flaskr.sqlite", LIVE_POLL_INTERVAL="0.1", POSTS_PER_PAGE="1")
    command = hypercorn_command(port, "--graceful-timeout", "1")
    with running(command, env, port) as server:
        yield server


def anonymous_pages(audit: Audit, page: Page, url: str) -> None:
    """Audit what a visitor sees before logging in: a form's error, a flash, an error page."""
    page.goto(url + "/")
    audit(page, "index, empty", "blog/index.html")
    page.goto(url + "/nowhere")
    audit(page, "404", "error.html")
    page.goto(url + "/auth/register")
    audit(page, "register", "auth/register.html")
    fill_and_submit(page, {"Username": "writer", "Password": "a long browser password"}, "Register")
    expect(page).to_have_url(url + "/auth/login")
    audit(page, "login, just registered", "auth/login.html")
    fill_and_submit(page, {"Username": "writer", "Password": "not the password"}, "Log In")
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    audit(page, "login, wrong password", "auth/login.html")


def writing_pages(audit: Audit, page: Page, reader: Page, url: str) -> None:
    """Audit a writer's pages, and a reader's index as it hears of each change."""
    fill_and_submit(page, {"Username": "writer", "Password": "a long browser password"}, "Log In")
    expect(page).to_have_url(url + "/")
    reader.goto(url + "/")
    page.goto(url + "/create")
    audit(page, "create", "blog/create.html")
    fill_and_submit(page, {"Title": "First", "Body": "One."}, "Save")
    audit(page, "index, a post", "blog/index.html")
    expect(reader.get_by_role("link", name="1 new post")).to_be_visible()
    expect(reader.get_by_text("No posts yet.")).to_be_hidden()
    audit(reader, "index, empty, a new post", "blog/index.html")

    reader.reload()
    page.get_by_role("link", name="Edit").click()
    audit(page, "update", "blog/update.html")
    fill_and_submit(page, {"Title": "First, edited"}, "Save")
    expect(reader.locator(".live-mark")).to_have_text("This post was edited.")
    audit(reader, "index, a post edited", "blog/index.html")
    # A reload shows the new text, still marked edited.
    reader.reload()
    expect(reader.locator("article h2")).to_have_text("First, edited")
    expect(reader.locator("article .about")).to_have_text(re.compile(r" \(edited\)$"))

    page.goto(url + "/create")
    fill_and_submit(page, {"Title": "Second", "Body": "Two."}, "Save")
    page.get_by_role("link", name="Older posts").click()
    audit(page, "index, page 2", "blog/index.html")
    page.get_by_role("link", name="Edit").click()
    page.get_by_role("button", name="Delete").click()
    expect(reader.locator(".live-mark")).to_have_text("This post was deleted.")
    audit(reader, "index, a post deleted", "blog/index.html")


def account_pages(audit: Audit, page: Page, other: Page, url: str) -> None:
    """Audit the password and sessions pages, with a second session of the same user."""
    page.goto(url + "/auth/password")
    audit(page, "password", "auth/password.html")
    other.goto(url + "/auth/login")
    fill_and_submit(other, {"Username": "writer", "Password": "a long browser password"}, "Log In")
    expect(other).to_have_url(url + "/")
    page.goto(url + "/auth/sessions")
    audit(page, "sessions, two", "auth/sessions.html")


def test_every_page_passes_axe(
    browser: Browser, paged_live_server: Server, request: pytest.FixtureRequest
) -> None:
    """axe-core finds nothing on any page, in each state a visitor or a writer meets.

    Each state is met once: a form's error (an alert) on the login page, a completed action's
    flash (a status) after registering, the live notice and marks on a reader's index.
    """
    url, audit = paged_live_server.url, Audit()
    contexts = [browser.new_context() for _ in range(3)]
    try:
        writer, reader, other = (Tab(context.new_page()) for context in contexts)
        started = time.monotonic()
        with screenshot_on_failure(writer, request.node.name):
            anonymous_pages(audit, writer.page, url)
            writing_pages(audit, writer.page, reader.page, url)
            account_pages(audit, writer.page, other.page, url)
        print(f"axe-core checked {audit.pages} pages in {time.monotonic() - started:.2f} s")
        assert audit.found == []
        # Every template was audited: a new one fails here until its page is added above.
        every = {str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*.html")}
        assert audit.templates == every - {"base.html"}
        # The 404 page's own status is the one console error (CSP refusals would show here).
        status_404 = "Failed to load resource: the server responded with a status of 404 ()"
        assert writer.errors == [f"{status_404} at {url}/nowhere"]
        assert reader.errors == other.errors == []

        # And the audit can fail: faint text is found, and named.
        writer.page.evaluate(
            """() => {
                const faint = document.createElement("p");
                faint.id = "faint";
                faint.textContent = "Hard to read";
                faint.style.color = "#bbb";  // 1.9:1 on white
                document.querySelector("main").append(faint);
            }"""
        )
        [found] = axe_violations(writer.page, "sessions")
        assert found.startswith("sessions: color-contrast (serious) at #faint: Fix any of")
    finally:
        for context in contexts:
            context.close()
