"""Quart's development server (`quart --app flaskr_async run`): quiet reloads, one-line failures."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from hypercorn.utils import LifespanFailureError
from quart import Quart
from quart import current_app

ACCEPT_RACE = "Error on transport creation for incoming connection"
# Where the same race surfaces on Python 3.13.0, outside the loop's handler (below).
DETACH_RACE = "_SelectorTransport.__del__"


class App(Quart):
    """Quart, whose ``run`` (what `quart run` calls) ends a failed start-up with status 1 alone."""

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Serve as Quart does; exit 1 without a traceback if the app's start-up fails."""
        try:
            super().run(*args, **kwargs)
        except LifespanFailureError:
            # Its reason is logged already: one line for a setting or an unusable database
            # (Quart's traceback of those is dropped: middleware/security.py), Quart's
            # traceback for anything else. hypercorn's 85 lines would only say it again.
            raise SystemExit(1) from None


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


def drop_detach_race(
    previous: Callable[[sys.UnraisableHookArgs], object], unraisable: sys.UnraisableHookArgs
) -> None:
    """Pass every unraisable exception on to the hook set before, except a closed server's."""
    # The other side of python/cpython#109564: a connection's transport collected after the
    # reload closed its server wakes the server's waiters, already gone (None), and Python
    # prints "Exception ignored in ... __del__" with a TypeError (seen on 3.13.0).
    method = getattr(unraisable.object, "__qualname__", None)
    if isinstance(unraisable.exc_value, TypeError) and method == DETACH_RACE:
        return
    previous(unraisable)


async def quiet_reloads() -> None:
    """When debugging, keep the cancellations of a reload out of the server's output."""
    if current_app.debug:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(partial(drop_cancellations, loop.get_exception_handler()))
        hook = sys.unraisablehook
        if not (isinstance(hook, partial) and hook.func is drop_detach_race):
            sys.unraisablehook = partial(drop_detach_race, hook)


def init_app(app: Quart) -> None:
    """Make the development server's reloads quiet."""
    app.before_serving(quiet_reloads)
