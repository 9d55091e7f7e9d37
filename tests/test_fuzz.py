"""Fuzzing: arbitrary text to every form, arbitrary ids and cursors to every route, never a 5xx."""

from __future__ import annotations

import os
import tempfile
from urllib.parse import quote
from urllib.parse import unquote
from urllib.parse import urlencode

import unicodedataplus
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from markupsafe import escape
from quart import Quart
from quart.testing import QuartClient

from flaskr_async.converters import MAX_ID
from flaskr_async.forms import BODY_MAX_BYTES
from flaskr_async.forms import INVISIBLE
from flaskr_async.forms import PASSWORD_MAX
from flaskr_async.forms import PASSWORD_MIN
from flaskr_async.forms import TITLE_MAX
from flaskr_async.forms import USERNAME_INPUT_MAX
from flaskr_async.forms import USERNAME_MAX
from flaskr_async.identity import NotAllowed
from flaskr_async.identity import canonical_password
from flaskr_async.identity import canonical_username
from flaskr_async.identity import lookup_key
from flaskr_async.identity import username_key
from flaskr_async.middleware.body_limits import FORM_LIMITS
from flaskr_async.middleware.security import FORM_EXPIRED
from flaskr_async.middleware.security import TOKEN_FIELD_MISSING
from flaskr_async.settings import DEFAULTS
from tests.helpers import STATE_CHANGING_FORMS
from tests.helpers import AuthActions
from tests.helpers import csrf_token_of
from tests.helpers import fetch_one
from tests.helpers import page_text
from tests.helpers import row_count

# Hypothesis caches Unicode tables and source constants under ./.hypothesis even without
# an example database. The directory is read on first use, which comes after this import.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "flaskr-async-hypothesis")
)

MAX_CONTENT_LENGTH: int = DEFAULTS["MAX_CONTENT_LENGTH"]


def fuzz(max_examples: int) -> settings:
    """Return the settings of one fuzz test.

    pytest-asyncio runs each example of an ``async def`` test decorated with ``@given`` on
    the test's own event loop, the one the ``app`` fixture serves on. The function-scoped
    fixtures (app, database, client) are therefore set up once and shared by the examples,
    which is fine here: each example is an independent request, the database may
    accumulate rows, and every assertion compares with the state re-read just before.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,  # request times vary with the backend and the shared CPU
        database=None,  # no example database written into the project
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


# st.text() leaves out lone surrogates, which the test client cannot form-encode (UTF-8).
TEXT = st.text()

SQL_PAYLOADS = (
    "'; DROP TABLE post; --",
    '" OR 1=1 --',
    "' OR '1'='1",
    '1); DELETE FROM "user"; --',
)
HTML_PAYLOADS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
)
ODD_TEXT = (
    "\x00",
    "test",  # the fixture user's name and password
    " ",
    "\t",
    "\r\n",
    "\u00a0",  # no-break space
    "\u2028",  # line separator
    "\u200b",  # zero-width space (not whitespace to str.strip)
    "\x07",  # BEL, a C0 control
    "\x85",  # NEL, a C1 control (whitespace to str.strip)
    "\u3164",  # Hangul filler: a letter that shows nothing
    "\u202e",  # right-to-left override
    "\ufeff",
    "\uffff",  # a noncharacter
    "e\u0301",  # a combining accent
    "\u0301",  # the accent alone, on nothing
    "\U000e0100",  # a variation selector beyond the BMP: default-ignorable
    "\u2065",  # unassigned, reserved default-ignorable
    "\ufff0",
    "\U0001f600",
    "%00",
    "&amp;",
    "{{ 7 * 7 }}",
    "\\",
)
FRAGMENTS = st.one_of(TEXT, st.sampled_from(SQL_PAYLOADS + HTML_PAYLOADS + ODD_TEXT))

OVER_LIMIT = "x" * MAX_CONTENT_LENGTH  # with its field name, over MAX_CONTENT_LENGTH: 413
HUGE = (
    "u" * (USERNAME_MAX + 1),
    "t" * (TITLE_MAX + 1),
    "p" * (PASSWORD_MAX + 1),
    "x" * BODY_MAX_BYTES,  # the largest valid body
    "é" * (BODY_MAX_BYTES // 2 + 1),  # over 64 KiB in bytes, not in characters
    "<script>alert(1)</script>" * 2000,  # HTML, body-sized but valid
    OVER_LIMIT,
)


@st.composite
def value(draw: st.DrawFn) -> str:
    """Draw a form value: a few mixed fragments, or rarely a huge string."""
    if draw(st.integers(0, 19)) == 19:  # huge strings are slow: about one value in twenty
        return draw(st.sampled_from(HUGE))
    return "".join(draw(st.lists(FRAGMENTS, max_size=4)))


@st.composite
def field(draw: st.DrawFn) -> str | None:
    """Draw a form field's value, or rarely None: the field is not sent."""
    if draw(st.integers(0, 19)) == 19:
        return None
    return draw(value())


def present(**fields: str | None) -> dict[str, str]:
    """Return the fields that are sent (None: the field is missing)."""
    return {name: value for name, value in fields.items() if value is not None}


ENDPOINTS = {
    "/auth/register": "auth.register",
    "/auth/login": "auth.login",
    "/auth/logout": "auth.logout",
    "/create": "blog.create",
    "/1/update": "blog.update",
    "/1/delete": "blog.delete",
}


def too_large(path: str, form: dict[str, str]) -> bool:
    """Tell whether a form, encoded as the test client sends it, is over its form's limit."""
    limit = FORM_LIMITS[ENDPOINTS[path]]
    size = len(urlencode(form).encode())
    return size > min(limit.max_bytes, MAX_CONTENT_LENGTH) or len(form) > limit.max_fields


def assert_no_raw_html(page: str, *values: str) -> None:
    """Check that no HTML payload inside the values reaches the page unescaped."""
    for payload in HTML_PAYLOADS:
        if any(payload in value for value in values):
            assert payload not in page, f"unescaped {payload!r}"


def assert_shown_escaped(page: str, *values: str) -> None:
    """Check that each value is in the page, HTML-escaped, and no payload is raw."""
    for value in values:
        assert str(escape(value)) in page, f"{value[:80]!r} not shown escaped"
    assert_no_raw_html(page, *values)


async def post_form(client: QuartClient, path: str, form: dict[str, str]) -> tuple[int, str]:
    """Post a form; check it is no server error and echoes no raw HTML; return status and page."""
    response = await client.post(path, form=form)
    event(f"status {response.status_code}")
    assert response.status_code < 500, (path, {k: v[:80] for k, v in form.items()})
    page = await page_text(response)
    assert_no_raw_html(page, *form.values())
    return response.status_code, page


def valid_login_name(username: str | None) -> bool:
    """Tell whether the login form accepts a username (it only bounds the work)."""
    return bool(username and username.strip()) and (
        len(username or "") <= USERNAME_INPUT_MAX and "\x00" not in (username or "")
    )


def valid_username(username: str | None) -> bool:
    """Tell whether the register form accepts a username: its canonical form, 150 at most."""
    if not valid_login_name(username):
        return False
    try:
        return len(canonical_username(username or "")) <= USERNAME_MAX
    except NotAllowed:
        return False


def valid_new_password(password: str | None) -> bool:
    """Tell whether the register form accepts a password."""
    if password is None or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return False
    try:
        return "\x00" not in password and len(canonical_password(password)) >= PASSWORD_MIN
    except NotAllowed:
        return False


def shows_something(text: str) -> bool:
    """Tell whether a text has a character that is neither blank space nor invisible."""
    return any(
        not char.isspace()
        and unicodedataplus.category(char) not in ("Cc", "Cf", "Cs", "Mn", "Me")
        and char not in INVISIBLE
        for char in text
    )


def controls_in(text: str) -> set[str]:
    """Return the C0 and C1 control characters of a text."""
    return {char for char in text if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F}


def valid_title(title: str | None) -> bool:
    """Tell whether the post form accepts a title: something visible, no control character."""
    return (
        bool(title)
        and shows_something(title or "")
        and (len(title or "") <= TITLE_MAX and not controls_in(title or ""))
    )


def valid_body(body: str) -> bool:
    """Tell whether the post form accepts a body: no control but line breaks and tabs."""
    return len(body.encode()) <= BODY_MAX_BYTES and controls_in(body) <= set("\t\n\r")


def body_as_stored(body: str) -> str:
    """Return the body a valid form stores: one with nothing visible is empty."""
    return body if shows_something(body) else ""


async def post_of(app: Quart, post_id: int) -> tuple[str, str] | None:
    """Return a post's title and body, re-read from the database."""
    row = await fetch_one(app, "SELECT title, body FROM post WHERE id = ?", (post_id,))
    return None if row is None else (row["title"], row["body"])


async def newest_post(app: Quart) -> tuple[int, str, str]:
    """Return the id, title and body of the newest post."""
    row = await fetch_one(app, "SELECT id, title, body FROM post ORDER BY id DESC LIMIT 1")
    assert row is not None
    return row["id"], row["title"], row["body"]


async def log_in(auth: AuthActions) -> None:
    """Log the fixture user in through the login form."""
    response = await auth.login()
    assert response.headers["Location"] == "/", "login failed"


@fuzz(50)
@example(username=OVER_LIMIT, password="a-long-password")
# Twice: the second attempt is refused, and the message quoting the name is escaped.
@example(username=HTML_PAYLOADS[0], password="a-long-password")
@example(username=HTML_PAYLOADS[0], password="a-long-password")
@given(username=field(), password=field())
async def test_register_takes_any_input(
    app: Quart, client: QuartClient, username: str | None, password: str | None
) -> None:
    form = present(username=username, password=password)
    valid = valid_username(username) and valid_new_password(password)
    key = username_key(username or "") if valid else None
    taken = valid and (
        await fetch_one(app, 'SELECT 1 FROM "user" WHERE username_key = ?', (key,)) is not None
    )
    users = await row_count(app, "user")

    status, page = await post_form(client, "/auth/register", form)

    if too_large("/auth/register", form):
        assert status == 413
    else:
        assert status == (302 if valid and not taken else 200)
    assert await row_count(app, "user") == users + (status == 302)
    if taken:
        assert_shown_escaped(
            page, f"User {canonical_username(username or '')} is already registered."
        )


@fuzz(50)
@example(username="test", password="test")
@example(username="test", password=OVER_LIMIT)
@given(username=field(), password=field())
async def test_login_takes_any_input(
    client: QuartClient, username: str | None, password: str | None
) -> None:
    form = present(username=username, password=password)

    status, page = await post_form(client, "/auth/login", form)

    if too_large("/auth/login", form):
        assert status == 413
    elif not (valid_login_name(username) and password and len(password) <= PASSWORD_MAX):
        assert status == 200
    elif status != 429:  # 429: too many failures from this client's address
        # Any spelling of a fixture name, with its password as typed.
        fixture_user = (lookup_key(username or ""), password) in (
            ("test", "test"),
            ("other", "other"),
        )
        assert status == (302 if fixture_user else 200)
        assert (status == 302) is ("Incorrect username or password." not in page)


@fuzz(50)
@example(title="t", body=None)  # a scripted client need not send the textarea
@example(title=HTML_PAYLOADS[0], body=HTML_PAYLOADS[1])
@example(title="t", body=OVER_LIMIT)
@given(title=field(), body=field())
async def test_create_takes_any_input(
    app: Quart, client: QuartClient, auth: AuthActions, title: str | None, body: str | None
) -> None:
    await log_in(auth)
    form = present(title=title, body=body)
    posts = await row_count(app, "post")

    status, _ = await post_form(client, "/create", form)

    if too_large("/create", form):
        assert status == 413
    else:
        # A body that is not sent is an empty one.
        assert status == (302 if valid_title(title) and valid_body(body or "") else 200)
    assert await row_count(app, "post") == posts + (status == 302)
    if status == 302:
        _, stored_title, stored_body = await newest_post(app)
        assert (stored_title, stored_body) == (title, body_as_stored(body or ""))
        assert_shown_escaped(await page_text(await client.get("/")), stored_title, stored_body)


@fuzz(50)
@example(title=HTML_PAYLOADS[2], body=HTML_PAYLOADS[0])
@example(title=OVER_LIMIT, body="")
@example(title=None, body=None)  # fields not sent keep the post's values
@given(title=field(), body=field())
async def test_update_takes_any_input(
    app: Quart, client: QuartClient, auth: AuthActions, title: str | None, body: str | None
) -> None:
    await log_in(auth)
    form = present(title=title, body=body)
    before = await post_of(app, 1)
    assert before is not None
    # A field that is not sent keeps the post's value (the form is filled from the post).
    new_title = before[0] if title is None else title
    new_body = before[1] if body is None else body

    status, _ = await post_form(client, "/1/update", form)

    if too_large("/1/update", form):
        assert status == 413
    else:
        assert status == (302 if valid_title(new_title) and valid_body(new_body) else 200)
    assert await post_of(app, 1) == (
        (new_title, body_as_stored(new_body)) if status == 302 else before
    )
    if status == 302:
        page = await page_text(await client.get("/"))
        assert_shown_escaped(page, new_title, body_as_stored(new_body))


EXTRA_FIELDS = st.dictionaries(TEXT, value(), max_size=3)


@fuzz(30)
@example(form={"x": OVER_LIMIT})
@given(form=EXTRA_FIELDS)
async def test_delete_takes_any_input(
    app: Quart, client: QuartClient, auth: AuthActions, form: dict[str, str]
) -> None:
    await log_in(auth)
    created = await client.post("/create", form={"title": "doomed", "body": ""})
    assert created.status_code == 302
    post_id, _, _ = await newest_post(app)

    status, _ = await post_form(client, f"/{post_id}/delete", form)

    # With CSRF off the form is never read, so even a body over the limit may pass.
    assert status in (302, 413)
    assert (await post_of(app, post_id) is None) is (status == 302)


@fuzz(30)
@example(form={"x": OVER_LIMIT})
@given(form=EXTRA_FIELDS)
async def test_logout_takes_any_input(
    client: QuartClient, auth: AuthActions, form: dict[str, str]
) -> None:
    await log_in(auth)

    status, _ = await post_form(client, "/auth/logout", form)

    assert status in (302, 413)
    logged_out = "Log In" in await page_text(await client.get("/"))
    assert logged_out is (status == 302)


ODD_IDS = (
    "0",
    "-1",
    "+1",
    " 1",
    "1.5",
    "1e3",
    "0x1",
    "1_0",
    "\u0661",  # ARABIC-INDIC DIGIT ONE
    "\uff11",  # FULLWIDTH DIGIT ONE
    str(MAX_ID),
    str(MAX_ID + 1),
    "0" * 30 + "1",
    "1" * 5000,  # over Python's 4300-digit limit of int(str)
    "",
    ".",
    "..",
    "/",
    "%",
    "\x00",
)
ID_ROUTES = (("GET", "/{}/update"), ("POST", "/{}/update"), ("POST", "/{}/delete"))


@fuzz(80)
@given(
    route=st.sampled_from(ID_ROUTES),
    post_id=st.one_of(
        st.integers(-1, 3), st.integers(), TEXT, st.binary(), st.sampled_from(ODD_IDS)
    ),
)
async def test_any_post_id_is_a_post_or_a_client_error(
    app: Quart,
    client: QuartClient,
    auth: AuthActions,
    route: tuple[str, str],
    post_id: int | str | bytes,
) -> None:
    await log_in(auth)
    method, template = route
    raw_path = template.format(
        quote(post_id if isinstance(post_id, bytes) else str(post_id), safe="")
    )
    exists = (
        isinstance(post_id, int) and 0 < post_id <= MAX_ID and bool(await post_of(app, post_id))
    )

    # The path as an ASGI server passes it (decoded, and raw): the test client would decode
    # the path and parse it again as a URL, which fails on some (a decoded "//x" reads as a
    # host name) before any request is made.
    scope = {"path": unquote(raw_path), "raw_path": raw_path.encode("ascii")}
    response = await client.open("/", method=method, scope_base=scope)

    event(f"{method} {template} -> {response.status_code}")
    assert response.status_code < 500, (method, raw_path[:100])
    if isinstance(post_id, int):
        assert (response.status_code == 404) is not exists


def ascii_digits(value: str) -> bool:
    """Tell whether a string is made of ASCII digits only."""
    return value.isascii() and value.isdigit()


def cursor_statuses(value: str | bytes) -> set[int]:
    """Return the statuses the index may answer a page cursor with."""
    if isinstance(value, bytes):  # read as UTF-8, anything else replaced (so not a digit)
        value = value.decode("utf-8", "replace")
    if not ascii_digits(value) or not value.strip("0"):
        return {400}
    significant = value.lstrip("0")
    in_range = len(significant) <= len(str(MAX_ID)) and int(significant) <= MAX_ID
    if value.startswith("0"):  # a post id with leading zeros: either reading is fine
        return {200, 400} if in_range else {400}
    return {200} if in_range else {400}


ODD_CURSORS = ODD_IDS + ("1" * 4301, "0" * 4300 + "1", "1" * 4300)
CURSORS = st.one_of(
    st.integers().map(str),
    st.text("0123456789"),
    TEXT,
    st.binary(),  # not always UTF-8
    st.sampled_from(ODD_CURSORS),
)


@fuzz(60)
@example(cursors={"before": "1" * 4301})
@given(cursors=st.fixed_dictionaries({}, optional={"before": CURSORS, "after": CURSORS}))
async def test_any_page_cursor_is_a_page_or_a_400(
    client: QuartClient, cursors: dict[str, str | bytes]
) -> None:
    response = await client.get("/", query_string=cursors)

    event(f"/?{'&'.join(sorted(cursors))} -> {response.status_code}")
    assert response.status_code < 500, {name: value[:80] for name, value in cursors.items()}
    each = [cursor_statuses(value) for value in cursors.values()]
    if any(statuses == {400} for statuses in each):
        assert response.status_code == 400
    else:
        # Valid cursors; one with leading zeros may be read as an id or refused.
        assert response.status_code in {200}.union(*each)


def tampered(token: str) -> st.SearchStrategy[str]:
    """Draw a token changed in its signed part (before the signature) or cut short.

    Not any change: the signature is base64, and its last character carries two spare
    bits, so three other characters there decode to the same signature and are accepted.
    That is no forgery (the HMAC is unchanged), but neither is it a different token.
    """
    signed_end = token.rindex(".")
    inserted = st.tuples(st.integers(0, signed_end), st.text(min_size=1)).map(
        lambda cut: token[: cut[0]] + cut[1] + token[cut[0] :]
    )
    truncated = st.integers(0, len(token) - 1).map(lambda size: token[:size])
    return st.one_of(inserted, truncated)


@fuzz(60)
@given(form_name=st.sampled_from(sorted(STATE_CHANGING_FORMS)), data=st.data())
async def test_every_csrf_token_but_the_real_one_is_refused(
    csrf_app: Quart, form_name: str, data: st.DataObject
) -> None:
    path, fields, needs_login = STATE_CHANGING_FORMS[form_name]
    client = csrf_app.test_client()
    assert isinstance(client, QuartClient)
    if needs_login:
        login_token = csrf_token_of(await page_text(await client.get("/auth/login")))
        form = {"username": "test", "password": "test", "csrf_token": login_token}
        assert (await client.post("/auth/login", form=form)).status_code == 302
    real = csrf_token_of(await page_text(await client.get("/auth/login")))
    token = data.draw(st.one_of(st.just(real), field(), tampered(real)), label="csrf_token")
    form = dict(fields) if token is None else {**fields, "csrf_token": token}
    state = (await row_count(csrf_app, "user"), await row_count(csrf_app, "post"))

    status, page = await post_form(client, path, form)

    if token == real:
        assert status not in (400, 413)
    elif too_large(path, form):
        assert status == 413
    else:
        assert status == 400
        # None or "": no token to check, which only a script sends; any other: expired.
        assert str(escape(TOKEN_FIELD_MISSING if not token else FORM_EXPIRED)) in page
        assert (await row_count(csrf_app, "user"), await row_count(csrf_app, "post")) == state
