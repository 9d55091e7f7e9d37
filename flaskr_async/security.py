"""Secure defaults: secret-key check, session cookie, CSRF, headers, proxy, error pages."""

from __future__ import annotations

from typing import Any

from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart
from quart import Response
from quart import g
from quart import render_template
from quart import session
from quart_wtf import CSRFError
from quart_wtf import CSRFProtect
from werkzeug.exceptions import HTTPException

MIN_SECRET_KEY_BYTES = 32

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

csrf = CSRFProtect()


class InsecureSecretKey(RuntimeError):
    """SECRET_KEY is the development default or too short to serve with."""


def secret_key_problem(app: Quart) -> str | None:
    """Say what is wrong with SECRET_KEY for serving, if anything."""
    if app.debug or app.testing:
        return None
    key = app.config["SECRET_KEY"]
    size = len(key.encode() if isinstance(key, str) else key or b"")
    if key == "dev" or size < MIN_SECRET_KEY_BYTES:
        return (
            f"SECRET_KEY is the development default or shorter than {MIN_SECRET_KEY_BYTES}"
            " bytes. Set it in instance/config.py (SECRET_KEY = '...') or in the environment"
            " (FLASKR_SECRET_KEY), for example to the output of"
            ' python -c "import secrets; print(secrets.token_hex())".'
        )
    return None


def resolve_defaults(app: Quart) -> None:
    """Fill the settings whose defaults depend on debug/testing."""
    if app.config["SESSION_COOKIE_SECURE"] is None:
        # Browsers only send Secure cookies over HTTPS (and to localhost).
        app.config["SESSION_COOKIE_SECURE"] = not (app.debug or app.testing)


async def add_security_headers(response: Response) -> Response:
    """Add the security headers to every response, redirects and errors included."""
    # One pass over the names already set: werkzeug's setdefault raises (and catches) a
    # KeyError per missing header, which cost a quarter of /hello's throughput.
    present = {name.lower() for name in response.headers.keys()}
    response.headers.extend(
        (name, value) for name, value in SECURITY_HEADERS.items() if name.lower() not in present
    )
    return response


async def forbid_shared_caching(response: Response) -> Response:
    """Keep logged-in pages out of every cache, and any session's pages out of shared ones."""
    if "Cache-Control" not in response.headers:
        if g.get("user") is not None:
            response.headers["Cache-Control"] = "no-store"
        elif session.accessed or session.modified:
            # The page carries this session's CSRF token: never hand it to another visitor.
            response.headers["Cache-Control"] = "private"
    return response


async def render_error(error: HTTPException) -> Any:
    """Show an HTTP error as a short page in the site's layout."""
    description = FORM_EXPIRED if isinstance(error, CSRFError) else error.description
    page = await render_template(
        "error.html", code=error.code, name=error.name, description=description
    )
    return page, error.code, error.get_headers()


def init_app(app: Quart) -> None:
    """Check the secret at start-up, protect forms, add headers, trust the configured proxies."""
    resolve_defaults(app)
    csrf.init_app(app)

    @app.before_serving
    async def refuse_insecure_secret_key() -> None:
        problem = secret_key_problem(app)
        if problem is not None:
            app.logger.error(problem)
            raise InsecureSecretKey(problem)

    app.after_request(add_security_headers)
    app.after_request(forbid_shared_caching)
    app.register_error_handler(HTTPException, render_error)

    hops = int(app.config["PROXY_FIX_TRUSTED_HOPS"])
    if hops:
        # Wrapping asgi_app (not app) keeps the test client going through it too.
        app.asgi_app = ProxyFixMiddleware(  # type: ignore[method-assign]
            app.asgi_app, mode="legacy", trusted_hops=hops
        )
