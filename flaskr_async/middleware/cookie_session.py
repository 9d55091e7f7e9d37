"""The signed session cookie, without the work a request that has none does not need."""

from __future__ import annotations

from typing import Any

from itsdangerous import URLSafeTimedSerializer
from quart import Quart
from quart import Response
from quart.sessions import SecureCookieSession
from quart.sessions import SecureCookieSessionInterface
from quart.sessions import SessionMixin
from quart.wrappers import BaseRequestWebsocket
from werkzeug.wrappers import Response as WerkzeugResponse

# Messages kept for pages not yet shown: a client that never follows the redirects (a script,
# a form posted again and again) would otherwise grow the cookie by one message each time.
PENDING_MESSAGES_MAX = 2
FLASHES = "_flashes"  # where Quart's flash() keeps them


class CookieSessionInterface(SecureCookieSessionInterface):
    """Quart's signed-cookie session: the same cookie, built and read only when there is one.

    Quart builds an itsdangerous serializer on every request, cookie or not, and building one
    serializes a test value (``is_text_serializer``): a fifth of a bare route's time. Here the
    serializer is built once per set of keys, and a request without a cookie skips it.
    """

    def __init__(self) -> None:
        self.serializers: dict[tuple[Any, ...], URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app: Quart) -> URLSafeTimedSerializer | None:
        """Return the serializer for the app's current keys (None without a secret key)."""
        # Keyed on the keys themselves: a rotated key (or a test's new one) gets its own.
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        serializer = self.serializers.get(keys)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if serializer is None:
                return None
            self.serializers[keys] = serializer
        return serializer

    async def open_session(
        self, app: Quart, request: BaseRequestWebsocket
    ) -> SecureCookieSession | None:
        """Return an empty session at once when the request carries no session cookie."""
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return await super().open_session(app, request)

    async def save_session(
        self,
        app: Quart,
        session: SessionMixin,
        response: Response | WerkzeugResponse | None,
    ) -> None:
        """Set, refresh or delete the cookie; nothing to do for a session nobody touched."""
        if session or session.modified or session.accessed:
            pending = session.get(FLASHES)
            if pending and len(pending) > PENDING_MESSAGES_MAX:
                session[FLASHES] = pending[-PENDING_MESSAGES_MAX:]  # the newest
            await super().save_session(app, session, response)


def init_app(app: Quart) -> None:
    """Use the cookie session that skips unneeded work."""
    app.session_interface = CookieSessionInterface()
