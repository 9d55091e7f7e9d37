"""One name, one account: canonical usernames and passwords, at registration and login."""

from __future__ import annotations

import unicodedata

import pytest
from argon2 import PasswordHasher
from argon2 import extract_parameters
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from quart import Quart
from quart.testing import QuartClient

from flaskr_async.accounts import passwords
from flaskr_async.identity import NotAllowed
from flaskr_async.identity import canonical_password
from flaskr_async.identity import canonical_username
from flaskr_async.identity import lookup_key
from flaskr_async.identity import username_key
from tests.helpers import AuthActions
from tests.helpers import fetch_one
from tests.helpers import logged_in_as
from tests.helpers import page_text
from tests.helpers import row_count


def nfd(text: str) -> str:
    """Return text in Unicode normalization form D (accents as combining marks)."""
    return unicodedata.normalize("NFD", text)


def full_width(text: str) -> str:
    """Return text with its ASCII letters and digits in their full-width forms."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


# Every way to type "jürgen" that is the same name; each must be "already registered".
JURGEN_SPELLINGS = {
    "NFD": nfd("jürgen"),
    "full-width": full_width("jürgen"),
    "full-width NFD": full_width(nfd("jürgen")),
    "trailing space": "jürgen ",
    "leading space": " jürgen",
    "tab": "\tjürgen\t",
    "no-break space": "\u00a0jürgen",
    "ideographic space": "\u3000jürgen",
    "capital": "Jürgen",
    "upper case": "JÜRGEN",
    "upper case NFD": nfd("JÜRGEN"),
}

# Letter case is Unicode case folding: each pair is one account, whichever registers first.
CASE_TWINS = {
    "final sigma": ("ΟΔΟΣ", "οδοσ"),
    "final sigma typed": ("οδος", "ΟΔΟΣ"),
    "sharp s": ("straße", "STRASSE"),
    "capital sharp s": ("STRAẞE", "strasse"),
    "kelvin sign": ("\u212aelvin", "kelvin"),
    "cherokee": ("\u13a0\u13a1", "\uab70\uab71"),
}


async def register(client: QuartClient, username: str, password: str = "a-long-password") -> str:
    """Post the registration form; return where it redirects, or the page it shows again."""
    response = await client.post(
        "/auth/register", form={"username": username, "password": password}
    )
    if response.status_code == 302:
        return response.headers["Location"]
    assert response.status_code == 200
    return (await page_text(response)).replace("&#39;", "'")


@pytest.mark.parametrize("spelling", JURGEN_SPELLINGS.values(), ids=JURGEN_SPELLINGS.keys())
async def test_every_spelling_of_a_name_is_one_account(
    app: Quart, client: QuartClient, auth: AuthActions, spelling: str
) -> None:
    assert await register(client, "jürgen") == "/auth/login"
    users = await row_count(app, "user")

    page = await register(client, spelling)

    assert f"User {canonical_username(spelling)} is already registered." in page
    assert await row_count(app, "user") == users
    response = await auth.login(spelling, "a-long-password")
    assert response.headers["Location"] == "/"
    row = await fetch_one(
        app, 'SELECT id, username FROM "user" WHERE username_key = ?', ("jürgen",)
    )
    assert row is not None and row["username"] == "jürgen"
    assert await logged_in_as(app, client) == row["id"]


async def test_names_are_shown_as_typed_and_stored_canonical(
    app: Quart, client: QuartClient, auth: AuthActions
) -> None:
    assert await register(client, f"  {nfd('Jürgen')}  {full_width('Smith')}\t") == "/auth/login"
    row = await fetch_one(app, 'SELECT username, username_key FROM "user" WHERE id = 3')
    assert row is not None
    assert (row["username"], row["username_key"]) == ("Jürgen Smith", "jürgen smith")
    await auth.login("jürgen smith", "a-long-password")
    assert "Jürgen Smith" in await page_text(await client.get("/"))


async def test_fixture_names_collide_in_any_case(app: Quart, client: QuartClient) -> None:
    assert "User TEST is already registered." in await register(client, "TEST")
    assert await row_count(app, "user") == 2


@pytest.mark.parametrize(
    "username",
    [
        "\ufb01sh",  # LATIN SMALL LIGATURE FI: a compatibility character
        "a\u200bb",  # ZERO WIDTH SPACE: invisible
        "smile \U0001f642",  # symbols are not identifiers
        "a\x07b",  # a control character
        "\U000e0001x",  # LANGUAGE TAG: invisible
    ],
)
async def test_register_refuses_names_precis_refuses(
    app: Quart, client: QuartClient, username: str
) -> None:
    page = await register(client, username)
    assert "Username contains characters that are not allowed." in page
    assert await row_count(app, "user") == 2


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("u" * 1025, "Username must be at most 150 characters."),
        ("u" * 151, "Username must be at most 150 characters."),
        # The limit counts the canonical form: 150 letters in NFD are 300 code points.
        (nfd("ü") * 151, "Username must be at most 150 characters."),
    ],
)
async def test_register_limits_the_canonical_name(
    app: Quart, client: QuartClient, username: str, message: str
) -> None:
    assert message in await register(client, username)
    assert await row_count(app, "user") == 2


async def test_register_accepts_150_canonical_characters(
    app: Quart, client: QuartClient, auth: AuthActions
) -> None:
    name = nfd("ü") * 150  # 300 code points typed, 150 stored
    assert await register(client, name) == "/auth/login"
    assert (await auth.login("ü" * 150, "a-long-password")).headers["Location"] == "/"


@pytest.mark.parametrize(
    ("registered", "typed"),
    [
        ("pässwörd-long", nfd("pässwörd-long")),
        (nfd("pässwörd-long"), "pässwörd-long"),
        ("pass\u00a0word-long", "pass word-long"),  # OpaqueString maps non-ASCII spaces
    ],
)
async def test_password_in_another_normal_form_logs_in(
    client: QuartClient, auth: AuthActions, registered: str, typed: str
) -> None:
    assert await register(client, "newcomer", registered) == "/auth/login"
    assert (await auth.login("newcomer", typed)).headers["Location"] == "/"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("tab\tinside-it", "Password contains characters that are not allowed."),
        ("bell\x07inside-it", "Password contains characters that are not allowed."),
        # Eight code points, four characters once composed.
        (nfd("éééé"), "Password must be at least 8 characters."),
    ],
)
async def test_register_refuses_passwords_opaquestring_refuses(
    app: Quart, client: QuartClient, password: str, message: str
) -> None:
    assert message in await register(client, "newcomer", password)
    assert await row_count(app, "user") == 2


async def test_a_refused_password_is_a_failed_login(client: QuartClient, auth: AuthActions) -> None:
    response = await auth.login("test", "test\x07")
    assert response.status_code == 200
    assert "Incorrect username or password." in await page_text(response)


async def test_login_bounds_the_work_only(auth: AuthActions) -> None:
    response = await auth.login("u" * 1025, "whatever")
    assert "Username must be at most 1024 characters." in await page_text(response)
    response = await auth.login("test", "p" * 1025)
    assert "Password must be at most 1024 characters." in await page_text(response)


async def test_spellings_of_a_name_share_one_throttle(
    app: Quart, client: QuartClient, auth: AuthActions
) -> None:
    spellings = ["test", "TEST", "Test", " test", full_width("test"), "tEsT"]
    for attempt in range(10):
        response = await auth.login(spellings[attempt % len(spellings)], "wrong")
        assert response.status_code == 200
    assert (await auth.login(full_width("TEST"), "test")).status_code == 429


def upper_case(text: str) -> str:
    """Upper-case the letters whose capital lower-cases back to them (not "ß" -> "SS")."""
    return "".join(c.upper() if c.upper().lower() == c else c for c in text)


# Names PRECIS accepts: letters, digits and ASCII punctuation, with spaces between parts.
NAME_PARTS = st.text(
    st.characters(categories=["Ll", "Lu", "Lo", "Nd", "Mn", "Po", "Zs"]), min_size=1, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(text=NAME_PARTS)
def test_canonical_username_is_idempotent(text: str) -> None:
    try:
        shown = canonical_username(text)
    except NotAllowed:
        return
    assert canonical_username(shown) == shown
    key = username_key(text)
    assert username_key(shown) == key == username_key(key) == lookup_key(text)


@settings(max_examples=300, deadline=None)
@given(text=NAME_PARTS, spacing=st.sampled_from([" ", "\t", "\u00a0", "\u3000", "\u2003"]))
def test_every_spelling_has_the_same_key(text: str, spacing: str) -> None:
    try:
        key = username_key(text)
    except NotAllowed:
        return
    spellings = [
        unicodedata.normalize("NFD", text),
        unicodedata.normalize("NFC", text),
        full_width(text),
        upper_case(text),
        spacing + text.replace(" ", spacing * 2) + spacing,
        text.casefold(),
        text.lower(),
        full_width(text.casefold()),
    ]
    # Other case changes are twins when Unicode's caseless matching says so (the dotless ı
    # upper-cased is I, which folds to i: another letter, so another name).
    spellings += [
        changed
        for changed in (text.upper(), text.swapcase(), text.title())
        if changed.casefold() == text.casefold()
    ]
    for spelling in spellings:
        try:
            assert username_key(spelling) == key, spelling
        except NotAllowed:  # pragma: no cover - only if upper() made a name PRECIS refuses
            pass


def test_refused_text_is_looked_up_as_typed() -> None:
    # Case folding alone would make the refused ligature an allowed "fi": the key is folded
    # from the canonical form, so a name has a key exactly when it may be registered.
    assert lookup_key("\ufb01sh") == "\ufb01sh"
    assert lookup_key("\U0001fa77") == "\U0001fa77"  # assigned by Unicode 15.0: not yet allowed
    with pytest.raises(NotAllowed):
        username_key("   ")


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=1, max_size=20))
def test_canonical_password_is_idempotent(text: str) -> None:
    try:
        canonical = canonical_password(text)
    except NotAllowed:
        return
    assert canonical_password(canonical) == canonical
    assert canonical_password(nfd(text)) == canonical


def count_hash_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each candidate password checked against a hash (the real check still runs)."""
    checked: list[str] = []
    real = passwords.check_hash

    def counting(stored: str, password: str) -> tuple[bool, bool]:
        checked.append(password)
        return real(stored, password)

    monkeypatch.setattr(passwords, "check_hash", counting)
    return checked


@pytest.mark.parametrize(("first", "twin"), CASE_TWINS.values(), ids=CASE_TWINS.keys())
async def test_case_twins_are_one_account(client: QuartClient, first: str, twin: str) -> None:
    assert await register(client, first) == "/auth/login"
    assert username_key(first) == username_key(twin)
    assert f"User {canonical_username(twin)} is already registered." in await register(client, twin)


@pytest.mark.parametrize(
    ("typed", "checks"),
    [
        ("wrong-ascii-password", 1),  # most wrong passwords: one hash, as before
        (nfd("wröng-pässword"), 2),  # canonical form differs: the text as typed is tried too
        ("wröng-pässword", 1),  # already canonical
        # Refused today, so only as an older version hashed it: the text as typed (NFC).
        ("bell\x07-bell\x07", 1),
        (nfd("bell\x07-pässword"), 2),  # and the text as typed
    ],
)
@pytest.mark.parametrize("known_user", [True, False], ids=["known", "unknown"])
def test_a_wrong_password_costs_the_same_for_any_user(
    monkeypatch: pytest.MonkeyPatch, typed: str, checks: int, known_user: bool
) -> None:
    stored = passwords.hash_sync("the-right-password") if known_user else None
    checked = count_hash_checks(monkeypatch)
    assert passwords.verify_sync(stored, typed) == (False, False)
    assert len(checked) == checks


def test_a_password_a_newer_python_accepted_still_logs_in_everywhere() -> None:
    # U+1FA77 (Unicode 15.0) was hashed in its OpaqueString form by 3.12 before the repertoire
    # was frozen at Unicode 14.0: it is refused for new passwords, and still matches its hash.
    typed = "pink\u00a0heart \U0001fa77"
    older = passwords.HASHER.hash("pink heart \U0001fa77")
    with pytest.raises(NotAllowed):
        canonical_password(typed)
    assert passwords.verify_sync(older, typed) == (True, False)
    assert passwords.verify_sync(older, "pink heart \U0001fa78") == (False, False)


TODAY = (2, 19 * 1024, 1)  # passes, KiB of memory, lanes


@pytest.mark.production_password_cost
@pytest.mark.parametrize(
    ("stored", "rehashed"),
    [
        ((4, 64 * 1024, 2), None),  # stronger in each: kept as it is
        (TODAY, None),
        ((1, 64 * 1024, 2), (2, 64 * 1024, 2)),  # fewer passes: only those raised
        ((8, 8 * 1024, 1), (8, 19 * 1024, 1)),  # less memory: only that raised
        ((1, 8 * 1024, 1), TODAY),
    ],
    ids=["stronger", "today", "fewer passes", "less memory", "weaker"],
)
def test_a_rehash_only_ever_strengthens(
    stored: tuple[int, int, int], rehashed: tuple[int, int, int] | None
) -> None:
    time_cost, memory_cost, parallelism = stored
    old = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    old_hash = old.hash("correct-horse")
    assert passwords.verify_sync(old_hash, "correct-horse") == (True, rehashed is not None)
    # A new hash (a rehash, or a password change) keeps each stronger parameter.
    new = extract_parameters(passwords.hash_sync("correct-horse", at_least=old_hash))
    expected = tuple(max(a, b) for a, b in zip(stored, TODAY, strict=True))
    assert (new.time_cost, new.memory_cost, new.parallelism) == expected == (rehashed or expected)


def test_a_malformed_argon2_hash_matches_nothing() -> None:
    assert passwords.check_hash("$argon2id$v=19$broken", "any-password") == (False, True)


def test_an_older_hash_of_the_text_as_typed_matches_and_is_redone() -> None:
    typed = nfd("pässwort-lang")
    older = passwords.HASHER.hash(typed)  # as hashed before passwords were normalized
    assert passwords.verify_sync(older, typed) == (True, True)
    assert passwords.verify_sync(older, "pässwort-lang") == (False, False)
    current = passwords.hash_sync(typed)
    assert passwords.verify_sync(current, typed) == (True, False)
    assert passwords.verify_sync(current, "pässwort-lang") == (True, False)
