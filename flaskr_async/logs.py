"""Log lines keep the module names they had before the package was split into folders, and
quote what a client chose escaped (``escaped``, as nginx's escape=default).

Quart's default handler prints ``[time] INFO in <module>: message``, and operators match those
lines (a journald filter, an alert on "ERROR in __main__"); moving a file into a layer's folder
must not rename them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from quart import Quart
from quart import has_request_context
from quart import request

# (folder, file) -> the module name its log lines carried in the flat layout.
FLAT_NAMES = {
    ("live", "__init__"): "live",
    ("live", "sources"): "live_sources",
    ("live", "broadcast"): "live_broadcast",
    ("live", "post_events"): "live_events",
    ("db", "commands"): "cli",
    ("accounts", "login_sessions"): "user_sessions",
    ("middleware", "body_limits"): "limits",
    ("middleware", "cookie_session"): "sessions",
    ("serving", "command"): "__main__",
}


class FlatModuleNames(logging.Filter):
    """Give each of the app's log records the module name of the flat layout."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = Path(record.pathname)
        if path.parent.parent.name == "flaskr_async":
            record.module = FLAT_NAMES.get((path.parent.name, path.stem), record.module)
        return True


class EscapedRequestPaths(logging.Filter):
    """Escape the path in Quart's "Exception on request GET /path" line: the client chose it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            # Quart 0.22's log_exception writes this exact f-string, with no arguments.
            unescaped = f"Exception on request {request.method} {request.path}"
            if record.msg == unescaped and not record.args:
                record.msg = f"Exception on request {request.method} {escaped(request.path)}"
        return True


def init_app(app: Quart) -> None:
    """Keep the app's log lines as they were, once per logger however many apps are created."""
    logger = logging.getLogger(app.name)
    for kind in (FlatModuleNames, EscapedRequestPaths):
        if not any(isinstance(existing, kind) for existing in logger.filters):
            logger.addFilter(kind())


def escaped(text: str | bytes) -> str:
    """Return client-chosen text fit for one log line, escaped as nginx's ``escape=default``.

    ``"`` and ``\\`` get a backslash; every byte below 0x20 or from 0x7f up is ``\\xHH``, so no
    terminal sequence, line break or quote of the client's reaches the log as itself. A str
    is written as its UTF-8 bytes, so that two different texts never log alike (bytes decoded
    as latin-1, as hypercorn's headers are, go back to bytes before they come here).
    """
    if isinstance(text, bytes):
        return "".join(ESCAPES[byte] for byte in text)
    if text.isascii() and PLAIN.issuperset(text):
        return text  # the common case, unchanged at no cost beyond this check
    return escaped(text.encode("utf-8", "surrogatepass"))


def byte_shown(byte: int) -> str:
    """Return one byte as a log line shows it (nginx, ngx_http_log_module's escape=default)."""
    if chr(byte) in '"\\':
        return "\\" + chr(byte)
    return chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02X}"


ESCAPES = [byte_shown(byte) for byte in range(0x100)]
PLAIN = frozenset(chr(byte) for byte in range(0x20, 0x7F)) - {'"', "\\"}
