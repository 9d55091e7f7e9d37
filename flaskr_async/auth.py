"""Accounts: register, log in, log out, and the logged-in user on every request."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable
from collections.abc import Callable
from typing import ParamSpec

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
from flaskr_async.db import get_db
from flaskr_async.forms import LoginForm
from flaskr_async.forms import RegisterForm
from flaskr_async.forms import first_error
from flaskr_async.identity import lookup_key
from flaskr_async.identity import username_key

logger = logging.getLogger("flaskr_async")

bp = Blueprint("auth", __name__, url_prefix="/auth")

P = ParamSpec("P")

# Any spelling finds the name's key; an older name without a key (or sharing one) matches by
# its exact spelling, which wins over another account's key.
USER_BY_NAME = (
    'SELECT id, password FROM "user" WHERE username = ? OR username_key = ?'
    " ORDER BY username = ? DESC LIMIT 1"
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
            await flash(f"User {form.username.data} is already registered.")
        else:
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
        reservation = await throttle.reserve(tx, key, client, devices.device_of(key))
        allowed = reservation.attempt_id is not None
        user = await tx.fetch_one(USER_BY_NAME, (username, key, username)) if allowed else None
    if reservation.attempt_id is None:
        await flash(f"Too many failed logins. Try again in {reservation.retry_after} seconds.")
        page = await render_template("auth/login.html", form=form)
        return page, 429, {"Retry-After": str(reservation.retry_after)}

    # No connection is held while the hash runs (tens of milliseconds, more when queued).
    matches, outdated = await verify_password(user["password"] if user else None, password)
    if user is None or not matches:
        logger.warning("Failed login for username %r from %s", username, address)
        # One message for unknown users and wrong passwords: no user enumeration.
        await flash("Incorrect username or password.")
        return await render_template("auth/login.html", form=form)

    # Never weaker than the stored hash: an operator may have made some hashes stronger.
    new_hash = await hash_password(password, at_least=user["password"]) if outdated else None
    async with db.transaction() as tx:
        await throttle.forget(tx, reservation.attempt_id)
        if new_hash is not None:
            await tx.execute('UPDATE "user" SET password = ? WHERE id = ?', (new_hash, user["id"]))
        session_id = await login_sessions.create(tx, user["id"])
    login_sessions.remember(session_id)
    response = redirect(url_for("index"))
    devices.remember(response, key)
    return response


@bp.route("/logout", methods=("POST",))
async def logout() -> ResponseReturnValue:
    """End the session on the server (a POST, so no link or image can log anyone out)."""
    await login_sessions.end()
    return redirect(url_for("index"))
