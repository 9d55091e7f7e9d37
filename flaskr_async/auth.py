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
from quart import session
from quart import url_for
from quart.typing import ResponseReturnValue

from flaskr_async import throttle
from flaskr_async.db import IntegrityError
from flaskr_async.db import get_db
from flaskr_async.db import release_db
from flaskr_async.forms import LoginForm
from flaskr_async.forms import RegisterForm
from flaskr_async.forms import first_error
from flaskr_async.passwords import hash_password
from flaskr_async.passwords import install_limit
from flaskr_async.passwords import verify_password

logger = logging.getLogger("flaskr_async")

bp = Blueprint("auth", __name__, url_prefix="/auth")

P = ParamSpec("P")


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
    install_limit(current_app)


@bp.before_app_request
async def load_logged_in_user() -> None:
    """Load the user whose id is in the session, if any, into ``g.user``."""
    user_id = session.get("user_id")
    g.user = None
    if user_id is not None:
        db = await get_db()
        g.user = await db.fetch_one('SELECT id, username FROM "user" WHERE id = ?', (user_id,))


@bp.route("/register", methods=("GET", "POST"))
async def register() -> ResponseReturnValue:
    """Create an account with a unique username and a hashed password."""
    form = await RegisterForm.create_form()
    if await form.validate_on_submit():
        password_hash = await hash_password(form.password.data)
        db = await get_db()
        try:
            async with db.transaction():
                await db.execute(
                    'INSERT INTO "user" (username, password) VALUES (?, ?)',
                    (form.username.data, password_hash),
                )
        except IntegrityError:
            # The UNIQUE constraint on username: someone has it (perhaps just now).
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
    address = request.remote_addr or "unknown"
    db = await get_db()
    locked_for = await throttle.seconds_locked(db, username, address)
    if locked_for:
        await flash(f"Too many failed logins. Try again in {locked_for} seconds.")
        page = await render_template("auth/login.html", form=form)
        return page, 429, {"Retry-After": str(locked_for)}

    user = await db.fetch_one('SELECT id, password FROM "user" WHERE username = ?', (username,))
    # A hash takes tens of milliseconds, longer when queued behind the cap: hand the connection
    # back meanwhile, or a burst of logins holds the whole pool while other pages wait for it.
    await release_db()
    matches, outdated = await verify_password(user["password"] if user else None, password)
    if user is None or not matches:
        await throttle.record_failure(await get_db(), username, address)
        logger.warning("Failed login for username %r from %s", username, address)
        # One message for unknown users and wrong passwords: no user enumeration.
        await flash("Incorrect username or password.")
        return await render_template("auth/login.html", form=form)

    if outdated:
        new_hash = await hash_password(password)
        db = await get_db()
        async with db.transaction():
            await db.execute('UPDATE "user" SET password = ? WHERE id = ?', (new_hash, user["id"]))
    # A fresh session on login: nothing from before (a planted value, an old token) survives.
    session.clear()
    session.permanent = True
    session["user_id"] = user["id"]
    return redirect(url_for("index"))


@bp.route("/logout", methods=("POST",))
async def logout() -> ResponseReturnValue:
    """End the session (a POST, so no link or image can log anyone out)."""
    session.clear()
    return redirect(url_for("index"))
