"""Per-form request limits, enforced before a body is parsed (RFC 9110 413 Content Too Large).

Each form's body may be at most the size its fields can reach and may carry at most the fields
the form has (``forms.FormLimit``). Both are checked on the raw bytes, before the CSRF check or
the view parse them, so a body of 100,000 tiny fields costs a byte count instead of a parse on
the event loop.
"""

from __future__ import annotations

from quart import Quart
from quart import abort
from quart import request
from quart.wrappers.request import Body
from quart.wrappers.request import Request
from werkzeug.exceptions import RequestEntityTooLarge

from flaskr_async.forms import CREDENTIALS
from flaskr_async.forms import PASSWORDS
from flaskr_async.forms import POST
from flaskr_async.forms import TOKEN_ONLY

FORM_LIMITS = {
    "auth.register": CREDENTIALS,
    "auth.login": CREDENTIALS,
    "auth.logout": TOKEN_ONLY,
    "auth.change_password": PASSWORDS,  # and the hidden username, for password managers
    "auth.end_other_sessions": TOKEN_ONLY,
    "blog.create": POST,
    "blog.update": POST,
    "blog.delete": TOKEN_ONLY,
}

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class LimitedBody(Body):
    """A request body whose size limit can be lowered once the route is known."""

    received = 0  # bytes that have arrived (counted where Quart 0.23 feeds the body)

    def lower_limit(self, max_bytes: int) -> None:
        """Refuse the body (413) once more than ``max_bytes`` have arrived, or already."""
        # Body keeps its limit in a private attribute, checked as chunks arrive (Quart 0.22)
        # or when the body is awaited (0.23): lowering it applies the form's own limit.
        if self._max_content_length is None or max_bytes < self._max_content_length:
            self._max_content_length = max_bytes
        # What Quart 0.22 buffered before now is never checked again; 0.23 checks at the await.
        buffered = self._data
        if isinstance(buffered, bytearray) and len(buffered) > max_bytes:
            self._must_raise = RequestEntityTooLarge()  # pragma: no cover - Quart 0.22 alone
            self.set_complete()  # pragma: no cover - Quart 0.22 alone

    async def put(self, data: bytes) -> None:  # pragma: no cover - Quart 0.23 alone calls it
        """Queue a chunk; past the limit, refuse the body and drop the rest as it arrives."""
        # Quart 0.23 would queue a chunked body of any size and refuse it only when awaited.
        self.received += len(data)
        if self._max_content_length is not None and self.received > self._max_content_length:
            if self._must_raise is None:
                self._must_raise = RequestEntityTooLarge()
                self.set_complete()
            return
        await super().put(data)  # type: ignore[misc, unused-ignore]


class LimitedRequest(Request):
    """Quart's request, with a body whose limit each form can lower."""

    body_class = LimitedBody


async def enforce_form_limits() -> None:
    """Refuse a form body over its form's size or field count with 413, before parsing it."""
    limit = FORM_LIMITS.get(request.endpoint or "")
    if limit is None or request.method != "POST":
        return
    too_large = f"This form's data may be at most {limit.max_bytes:,} bytes."
    if request.content_length is not None and request.content_length > limit.max_bytes:
        abort(413, too_large)
    body = request.body
    assert isinstance(body, LimitedBody)
    body.lower_limit(limit.max_bytes)
    # Both wait for the body; no connection or other scarce resource is held meanwhile.
    # Quart raises a bare 413 for a body over the (lowered) limit; say which limit it was.
    if request.mimetype == "multipart/form-data":
        request.max_form_parts = limit.max_fields  # the parser counts parts as it goes
        try:
            await request.form
        except RequestEntityTooLarge:
            abort(
                413,
                f"This form may carry at most {limit.max_bytes:,} bytes in "
                f"{limit.max_fields} fields.",
            )
    elif request.mimetype in FORM_TYPES:
        try:
            data = await body
        except RequestEntityTooLarge:
            abort(413, too_large)
        if data.count(b"&") >= limit.max_fields:
            abort(413, f"This form has at most {limit.max_fields} fields.")


def init_app(app: Quart) -> None:
    """Bound every form's body; call before anything that reads a form (the CSRF check)."""
    app.request_class = LimitedRequest
    app.before_request(enforce_form_limits)
