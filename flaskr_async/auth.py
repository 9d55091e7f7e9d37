"""Accounts: register, log in and out, change the password, end sessions; who is logged in."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import ParamSpec

from markupsafe import Markup
from quart import Blueprint
from quart import current_app
from quart import flash
from quart import g
from quart import redirect
from quart import render_template
from quart import request
from quart import url_for
from quart.typing import ResponseReturnValue

from flaskr_async.accounts import devices
from flaskr_async.accounts import login_sessions
from flaskr_async.accounts import throttle
from flaskr_async.accounts.passwords import hash_password
from flaskr_async.accounts.passwords import install_hash_slots
from flaskr_async.accounts.passwords import verify_password
from flaskr_async.clients import client_of
from flaskr_async.db import IntegrityError
from flaskr_async.db import Row
from flaskr_async.db import get_db
from flaskr_async.forms import DONE
from flaskr_async.forms import LoginForm
from flaskr_async.forms import PasswordChangeForm
from flaskr_async.forms import RegisterForm
from flaskr_async.forms import first_error
from flaskr_async.identity import lookup_key
from flaskr_async.identity import username_key
from flaskr_async.logs import escaped
from flaskr_async.quoting import quoted

logger = logging.getLogger("flaskr_async")

bp = Blueprint("auth", __name__, url_prefix="/auth")

P = ParamSpec("P")

# Any spelling finds the name's key; an older name without a key (or sharing one) matches by
# its exact spelling, which wins over another account's key.
USER_BY_NAME = (
    'SELECT id, password, password_changed_at FROM "user" WHERE username = ? OR username_key = ?'
    " ORDER BY username = ? DESC LIMIT 1"
)

PASSWORD_OF_USER = (
    'SELECT (SELECT password FROM "user" WHERE id = ?) AS password,'
    ' (SELECT password_changed_at FROM "user" WHERE id = ?) AS password_changed_at'
)

# Endpoints that never show a user, so their requests skip the session's database lookup.
WITHOUT_USER = frozenset({"static", "hello", "live.events"})


View = Callable[P, Awaitable[ResponseReturnValue]]


def login_required(view: View[P]) -> View[P]:
    """Redirect anonymous users to the login page."""

    @functools.wraps(view)
    async def wrapped_view(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        if g.user is None:
            return redirect(url_for("auth.login"))
        return await view(*args, **kwargs)

    return wrapped_view


@bp.before_app_serving
async def limit_password_hashing() -> None:
    """Cap concurrent password hashes; made while serving, so it uses the serving loop."""
    install_hash_slots(current_app)


@bp.before_app_request
async def load_logged_in_user() -> None:
    """Load the user of this request's session, if any, into ``g.user``."""
    g.user = None
    # Static files and /hello show no user: they touch neither the session nor the database.
    if request.endpoint not in WITHOUT_USER:
        g.user = await login_sessions.load_user()


@bp.route("/register", methods=("GET", "POST"))
async def register() -> ResponseReturnValue:
    """Create an account with a unique username and a hashed password."""
    form = await RegisterForm.create_form()
    if await form.validate_on_submit():
        password_hash = await hash_password(form.password.data)
        try:
            await get_db().execute(
                'INSERT INTO "user" (username, username_key, password) VALUES (?, ?, ?)',
                (form.username.data, username_key(form.username.data), password_hash),
            )
        except IntegrityError:
            # The UNIQUE constraint on the name's key: someone has it, in some spelling.
            # CONTRACT.md's words, the name whole: the form bounds it (USERNAME_MAX), and
            # PRECIS leaves it no control or bidi-override character to quote away.
            await flash(f"User {form.username.data} is already registered.")
        else:
            await flash(f"Registered as {quoted(form.username.data)}. Please log in.", DONE)
            return redirect(url_for("auth.login"))
    elif form.errors:
        await flash(first_error(form))
    return await render_template("auth/register.html", form=form)


@bp.route("/login", methods=("GET", "POST"))
async def login() -> ResponseReturnValue:
    """Log a user in, refusing for a while after too many failures."""
    form = await LoginForm.create_form()
    if not await form.validate_on_submit():
        if form.errors:
            await flash(first_error(form))
        return await render_template("auth/login.html", form=form)

    username, password = form.username.data, form.password.data
    key = lookup_key(username)  # every spelling of a name counts against one throttle
    address = request.remote_addr or "unknown"
    client = client_of(address)  # an IPv6 /64 is one client, as for the live index's share
    db = get_db()
    # The attempt is counted before its password is checked, in one serialized transaction:
    # a burst of guesses released together cannot all pass the check.
    async with db.transaction(serialize=throttle.SERIALIZE_KEY) as tx:
        user = await tx.fetch_one(USER_BY_NAME, (username, key, username))
        # A browser is known to the user only since the password's last change.
        device = devices.device_of(key, user)
        reservation = await throttle.reserve(tx, key, client, device)
    if reservation.attempt_id is None:
        return await too_many_failures("auth/login.html", form, reservation.retry_after)

    # No connection is held while the hash runs (tens of milliseconds, more when queued).
    matches, outdated = await verify_password(user["password"] if user else None, password)
    if user is None or not matches:
        # The client chose both (the address too, through X-Forwarded-For behind a proxy).
        logger.warning(
            'Failed login for username "%s" from %s', escaped(username), escaped(address)
        )
        # One message for unknown users and wrong passwords: no user enumeration.
        await flash("Incorrect username or password.")
        return await render_template("auth/login.html", form=form)

    # Never weaker than the stored hash: an operator may have made some hashes stronger.
    new_hash = await hash_password(password, at_least=user["password"]) if outdated else None
    session_id = await open_session(user, new_hash, reservation.attempt_id)
    if session_id is None:  # the password was changed while this one was checked
        await flash("Incorrect username or password.")
        return await render_template("auth/login.html", form=form)
    login_sessions.remember(session_id)
    response = redirect(url_for("index"))
    devices.remember(response, key, user["id"], user["password_changed_at"])
    return response


async def open_session(user: Row, new_hash: str | None, attempt_id: int) -> str | None:
    """Start a session for a user whose password matched; return its id.

    None when the password was changed meanwhile, on some host: no session may outlive that
    change. A rehash is stored only if no change came first, so it never undoes one; another
    login's rehash meanwhile is no change, so logins at once all succeed.
    """
    async with get_db().transaction() as tx:
        still = await tx.execute(
            'UPDATE "user" SET password = COALESCE(?, password)'
            " WHERE id = ? AND password_changed_at = ?",
            (new_hash, user["id"], user["password_changed_at"]),
        )
        if not still:
            return None
        await throttle.forget(tx, attempt_id)
        return await login_sessions.create(tx, user["id"])


async def too_many_failures(
    template: str, form: object, retry_after: int, what: str = "failed logins"
) -> ResponseReturnValue:
    """Show a form again with 429 Too Many Requests and when to try again."""
    await flash(f"Too many {what}. Try again in {wait_text(retry_after)}.")
    page = await render_template(template, form=form)
    return page, 429, {"Retry-After": str(retry_after)}


def wait_text(seconds: int) -> str:
    """Say a wait in seconds under a minute, else in whole minutes, rounded up."""
    # Retry-After stays in seconds (RFC 9110); "900 seconds" makes a person do the sum.
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@bp.app_template_filter("utc_time")
def utc_time(seconds: float) -> Markup:
    """Format Unix seconds as a <time> element: "2026-12-05 17:40 UTC", ISO 8601 inside."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat(timespec="seconds"), moment.strftime("%Y-%m-%d %H:%M UTC")
    )


@bp.route("/password", methods=("GET", "POST"))
@login_required
async def change_password() -> ResponseReturnValue:
    """Change the password, proving the current one; end every other session (ASVS V2.1.5)."""
    form = await PasswordChangeForm.create_form()
    if not await form.validate_on_submit():
        if form.errors:
            await flash(first_error(form))
        return await render_template("auth/password.html", form=form)

    user_id = g.user["id"]
    key = lookup_key(g.user["username"])
    address = request.remote_addr or "unknown"
    db = get_db()
    # A wrong current password is a failed login: a stolen session is no unthrottled oracle.
    # The user's sessions count as one known browser: their failures limit them together (a
    # new session id wins no new guesses), and guesses made at the login page by others
    # cannot lock the user out of changing the password.
    device = f"login:{user_id}:{g.user['login_id']}"
    async with db.transaction(serialize=throttle.SERIALIZE_KEY) as tx:
        reservation = await throttle.reserve(tx, key, client_of(address), device)
        # One row always: NULLs if the account was deleted meanwhile, which then match nothing.
        row = await tx.fetch_one(PASSWORD_OF_USER, (user_id, user_id))
    if reservation.attempt_id is None:
        return await too_many_failures(
            "auth/password.html", form, reservation.retry_after, "incorrect passwords"
        )

    assert row is not None
    stored, changed_before = row["password"], row["password_changed_at"]
    matches, _ = await verify_password(stored, form.current_password.data)
    if not matches:
        logger.warning("Wrong current password for user id %s from %s", user_id, escaped(address))
        await flash("Incorrect password.")
        return await render_template("auth/password.html", form=form)

    new_hash = await hash_password(form.new_password.data, at_least=stored)
    changed_at = time.time()
    session_id = await store_password(
        user_id, changed_before, new_hash, changed_at, reservation.attempt_id
    )
    if session_id is None:
        await flash("Your password was changed meanwhile, in another request. Try again.")
        return await render_template("auth/password.html", form=form), 409
    login_sessions.remember(session_id)
    await flash("Your password was changed.", DONE)
    response = redirect(url_for("index"))
    devices.remember(response, key, user_id, changed_at)
    return response


async def store_password(
    user_id: int, changed_before: float, new_hash: str, changed_at: float, attempt_id: int
) -> str | None:
    """Store the new hash, end every session; return this browser's new session id.

    None, changing nothing, when the password was changed since it was checked: of two changes
    racing, the second finds it changed. (A login's rehash meanwhile changes no password.)
    """
    async with get_db().transaction() as tx:
        await throttle.forget(tx, attempt_id)  # the password matched: not a failure
        changed = await tx.execute(
            'UPDATE "user" SET password = ?, password_changed_at = ?'
            " WHERE id = ? AND password_changed_at = ?",
            (new_hash, changed_at, user_id, changed_before),
        )
        if not changed:
            return None
        await login_sessions.end_all(tx, user_id)
        return await login_sessions.create(tx, user_id)  # this browser's, a new id


@bp.route("/sessions")
@login_required
async def sessions() -> ResponseReturnValue:
    """List the user's sessions: when each began and was last used, and in which browser."""
    active = await login_sessions.active_sessions(g.user["id"])
    return await render_template("auth/sessions.html", sessions=active)


@bp.route("/sessions/end-others", methods=("POST",))
@login_required
async def end_other_sessions() -> ResponseReturnValue:
    """End every session of the user but this one, whose id is rotated too.

    Rotated because a stolen cookie is a copy of this very session: ending the others would
    leave the thief's copy valid.
    """
    session_id = await login_sessions.end_others(g.user["id"], g.user["login_id"])
    if session_id is None:  # this session was ended meanwhile: nothing else is
        login_sessions.forget()
        return redirect(url_for("auth.login"))
    login_sessions.remember(session_id)
    await flash("Your other sessions were ended.", DONE)
    return redirect(url_for("auth.sessions"))


@bp.route("/logout", methods=("POST",))
async def logout() -> ResponseReturnValue:
    """End the session on the server (a POST, so no link or image can log anyone out)."""
    await login_sessions.end()
    await flash("You are logged out.", DONE)  # into the emptied session: shown, then gone
    return redirect(url_for("index"))
