"""Quiet reloads for Quart's development server (`quart --app flaskr_async run --debug`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from quart import Quart
from quart import current_app

ACCEPT_RACE = "Error on transport creation for incoming connection"

Handler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def drop_cancellations(
    previous: Handler | None, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    """Pass every loop error on to the handler set before, except a bare cancellation."""
    # A reload cancels every task, each open connection's too, and asyncio before Python
    # 3.12.2 (gh-113538) then logs a CancelledError traceback per connection.
    error = context.get("exception")
    if isinstance(error, asyncio.CancelledError):
        return
    # A connection accepted just as the reload closes the server trips asyncio's Server.close
    # race (python/cpython#109564, open): an AssertionError in Server._attach. The client
    # sees its connection closed, as for any connection a reload ends.
    if isinstance(error, AssertionError) and context.get("message") == ACCEPT_RACE:
        return
    if previous is None:
        loop.default_exception_handler(context)
    else:
        previous(loop, context)


async def quiet_reloads() -> None:
    """When debugging, keep the cancellations of a reload out of the server's output."""
    if current_app.debug:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(partial(drop_cancellations, loop.get_exception_handler()))


def init_app(app: Quart) -> None:
    """Make the development server's reloads quiet."""
    app.before_serving(quiet_reloads)
