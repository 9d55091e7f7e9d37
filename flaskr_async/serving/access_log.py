"""hypercorn's access log, with every value the client chose escaped as nginx escapes it.

hypercorn 0.18 writes the request line, the headers (User-Agent, Referer, any ``{name}i``) and
the client's address as they came: an ESC sequence in a User-Agent rewrote the terminal of the
person watching ``make run``, and a ``"`` forged the line's fields. hypercorn takes a Logger
class (``logger_class``), which only Python can name: the serve command sets it; hypercorn's
own command needs ``--config python:flaskr_async.serving.access_log`` (docs/deployment.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from hypercorn.logging import AccessLogAtoms
from hypercorn.logging import Logger
from hypercorn.typing import ResponseSummary
from hypercorn.typing import WWWScope

from flaskr_async.logs import escaped


def as_sent(text: str) -> bytes:
    """Return the bytes hypercorn decoded a header (or address) from: latin-1, else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire: an environment variable's value
        return text.encode("utf-8", "surrogateescape")


class EscapedAtoms(AccessLogAtoms):
    """hypercorn's atoms, each text escaped once they are all built; the target as sent."""

    def __init__(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> None:
        super().__init__(request, response, request_time)
        # Numbers (%(T)s, %(D)s) stay numbers, for a format that asks for %(D)d.
        self.update(
            {key: escaped(as_sent(value)) for key, value in self.items() if isinstance(value, str)}
        )
        # The request target as it came, percent-encoded, as nginx logs it: hypercorn's decoded
        # path would log /%C3%A9 and /%E9 (two paths) alike once escaped.
        path = escaped(request.get("raw_path") or request["path"].encode())
        query = escaped(request["query_string"])
        target = path + ("?" + query if query else "")
        method, protocol = self["m"], self["H"]
        self.update(
            {
                "U": path,
                "q": query,
                "Uq": target,
                "r": f"{method} {path} {protocol}",
                "R": f"{method} {target} {protocol}",
            }
        )


class EscapedAccessLogger(Logger):
    """hypercorn's Logger, whose access log lines escape what the client chose."""

    def atoms(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> Mapping[str, str]:
        """Return the atoms of one request's line, every text escaped."""
        return EscapedAtoms(request, response, request_time)


# For `hypercorn --config python:flaskr_async.serving.access_log`: the one setting it reads here.
logger_class = EscapedAccessLogger
