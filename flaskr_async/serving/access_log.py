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


class EscapedAtoms(AccessLogAtoms):
    """hypercorn's atoms, each text escaped once they are all built."""

    def __init__(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> None:
        super().__init__(request, response, request_time)
        # Numbers (%(T)s, %(D)s) stay numbers, for a format that asks for %(D)d.
        self.update({key: escaped(value) for key, value in self.items() if isinstance(value, str)})


class EscapedAccessLogger(Logger):
    """hypercorn's Logger, whose access log lines escape what the client chose."""

    def atoms(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> Mapping[str, str]:
        """Return the atoms of one request's line, every text escaped."""
        return EscapedAtoms(request, response, request_time)


# For `hypercorn --config python:flaskr_async.serving.access_log`: the one setting it reads here.
logger_class = EscapedAccessLogger
