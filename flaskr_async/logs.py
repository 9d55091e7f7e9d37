"""Log lines keep the module names they had before the package was split into folders.

Quart's default handler prints ``[time] INFO in <module>: message``, and operators match those
lines (a journald filter, an alert on "ERROR in __main__"); moving a file into a layer's folder
must not rename them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from quart import Quart

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


def init_app(app: Quart) -> None:
    """Keep the app's log lines as they were, once per logger however many apps are created."""
    logger = logging.getLogger(app.name)
    if not any(isinstance(existing, FlatModuleNames) for existing in logger.filters):
        logger.addFilter(FlatModuleNames())
