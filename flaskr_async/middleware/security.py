"""Secure defaults: session cookie, CSRF, headers, proxy, error pages."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart
from quart import Response
from quart import current_app
from quart import g
from quart import render_template
from quart import request
from quart_wtf import CSRFError
from quart_wtf import CSRFProtect
from quart_wtf.const import REFERRER_HEADER
from quart_wtf.const import REFERRER_HOST
from quart_wtf.const import TOKEN_MISSING
from werkzeug.exceptions import HTTPException

from flaskr_async.db import DatabaseUnavailable
from flaskr_async.middleware.error_pages import description_of
from flaskr_async.setting_rules import cross_site
from flaskr_async.setting_rules import secure_cookie
from flaskr_async.settings import InvalidSetting

SECURITY_HEADERS = {
    # No inline script or style anywhere, so the policy can be this strict.
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

FORM_EXPIRED = "The form has expired. Go back, reload the page and try again."
# Over HTTPS the CSRF check also wants a Referer from this site; reloading never brings one back.
REFERER_MISSING = (
    "The form was sent without a Referer header, which this site needs over HTTPS to tell its"
    " own forms from another site's. Allow your browser (or its privacy extension) to send the"
    " Referer to this site: the site itself only asks for it on its own pages (Referrer-Policy:"
    " same-origin). Then send the form again. A script must send one itself: a Referer header"
    " naming the page of this site the form came from (its https address)."
)
REFERER_FOREIGN = (
    "The form was sent from a page that is not on this site's address (its Referer header names"
    " another host or port). Open the form from this site's own address and send it again."
)
# Every page's form carries the field, so a form without one was built by a script: reloading
# a page is no advice for it.
TOKEN_FIELD_MISSING = (
    "The form was sent without its csrf_token field (or it was empty). This site's forms carry"
    " it as a hidden input; a script must GET the form's page first, keeping the session cookie it"
    " is given (one httpx.Client or requests.Session), and send that input's value as csrf_token"
    " with the other fields."
)
CSRF_MESSAGES = {
    REFERRER_HEADER: REFERER_MISSING,
    REFERRER_HOST: REFERER_FOREIGN,
    TOKEN_MISSING: TOKEN_FIELD_MISSING,
}
# No session cookie at all: the form's token has nothing to be checked against, and reloading
# alone would not help. Over plain http a Secure cookie is the likely cause (scripts, mostly).
NO_SESSION_COOKIE = (
    "The form was sent without this site's session cookie, so its token cannot be checked."
)
COOKIE_SECURE_OVER_HTTP = (
    " The cookie is Secure (SESSION_COOKIE_SECURE) and this request came over plain http:"
    " browsers send it back only to localhost, and scripts (httpx, requests) never do. Use"
    " https, or serve with FLASKR_SESSION_COOKIE_SECURE=false for local scripting (make run"
    " does where nothing sets it), then load the form again and send it."
)
COOKIES_REFUSED = (
    " Allow cookies for this site (a script must keep the cookies it is given, e.g. with one"
    " httpx.Client or requests.Session), then load the form again and send it."
)

csrf = CSRFProtect()


class LoggedAtTheSource(logging.Filter):
    """Drop Quart's traceback of a start-up failure whose cause already logged one clear line."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the traceback of an unusable database or a refused key."""
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, DatabaseUnavailable | InvalidSetting)


LOGGED_AT_THE_SOURCE = LoggedAtTheSource()  # one instance: adding it again is a no-op


def resolve_defaults(app: Quart) -> None:
    """Fill the settings whose defaults depend on debug/testing."""
    # Browsers only send Secure cookies over HTTPS (and to localhost).
    secure = app.config["SESSION_COOKIE_SECURE"]
    app.config["SESSION_COOKIE_SECURE"] = secure_cookie(app.config)
    if secure is None:
        # `quart run --debug` turns debug on after create_app: the default follows it then.
        app.before_serving(partial(follow_debug, app))


async def follow_debug(app: Quart) -> None:
    """Serve the unset Secure flag's debug default (off) if debug came on after creation."""
    if app.debug and not cross_site(app.config):  # SameSite=None needs Secure, debug or not
        app.config["SESSION_COOKIE_SECURE"] = False


async def secure_response(response: Response) -> Response:
    """Add the security headers and the caching rule to every response (one hook: each costs)."""
    # One pass over the names already set: werkzeug's setdefault raises (and catches) a
    # KeyError per missing header, which cost a quarter of /hello's throughput.
    present = {name.lower() for name in response.headers.keys()}
    response.headers.extend(
        (name, value) for name, value in SECURITY_HEADERS.items() if name.lower() not in present
    )
    if "cache-control" not in present:
        forbid_shared_caching(response)
    return response


def forbid_shared_caching(response: Response) -> None:
    """Keep logged-in pages out of every cache, and any session's pages out of shared ones."""
    if g.get("user") is not None:
        response.headers["Cache-Control"] = "no-store"
    elif "csrf_token" in g:
        # The page carries this session's CSRF token (quart-wtf keeps the one it rendered
        # in g): never hand it to another visitor. Not session.accessed: Quart 0.23 marks
        # every request's session accessed.
        response.headers["Cache-Control"] = "private"


def csrf_message(reason: str) -> str:
    """Say why a form's CSRF check failed and what to do, from quart-wtf's reason."""
    if current_app.config["SESSION_COOKIE_NAME"] not in request.cookies:
        secure_over_http = current_app.config["SESSION_COOKIE_SECURE"] and request.scheme == "http"
        return NO_SESSION_COOKIE + (
            COOKIE_SECURE_OVER_HTTP if secure_over_http else COOKIES_REFUSED
        )
    return CSRF_MESSAGES.get(reason, FORM_EXPIRED)


async def render_error(error: HTTPException) -> Any:
    """Show an HTTP error as a short page in the site's layout."""
    if isinstance(error, CSRFError):
        description = csrf_message(str(error.description))
    else:
        description = description_of(error)
    page = await render_template(
        "error.html", code=error.code, name=error.name, description=description
    )
    return page, error.code, error.get_headers()


def init_app(app: Quart) -> None:
    """Protect forms, add headers, trust the configured proxies."""
    resolve_defaults(app)
    csrf.init_app(app)
    # The logger by name: app.logger would add Quart's handler now, before logging is set up.
    logging.getLogger(app.name).addFilter(LOGGED_AT_THE_SOURCE)

    app.after_request(secure_response)
    app.register_error_handler(HTTPException, render_error)

    hops = int(app.config["PROXY_FIX_TRUSTED_HOPS"])
    if hops:
        # Wrapping asgi_app (not app) keeps the test client going through it too.
        app.asgi_app = ProxyFixMiddleware(  # type: ignore[method-assign]
            app.asgi_app, mode="legacy", trusted_hops=hops
        )
