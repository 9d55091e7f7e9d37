"""The event loops the app serves on: asyncio's own, or uvloop's where the config names it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hypercorn.config import Config

# The app runs on asyncio (aiosqlite, asyncpg): hypercorn's trio worker cannot serve it.
WORKER_CLASSES = ("asyncio", "uvloop")


def event_loop_factory(config: Config) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return the event loop hypercorn's ``worker_class`` names: uvloop's, else asyncio's (None)."""
    if config.worker_class == "uvloop":
        import uvloop  # only where configured: not on Windows, which uvloop does not support

        return uvloop.new_event_loop
    return None
