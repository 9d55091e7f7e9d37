"""The development server's loop: a reload's cancellations are dropped, other errors still shown."""

from __future__ import annotations

import asyncio
import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from flaskr_async import create_app
from flaskr_async.serving.devserver import ACCEPT_RACE
from flaskr_async.serving.devserver import drop_cancellations
from flaskr_async.serving.devserver import drop_detach_race
from flaskr_async.serving.devserver import quiet_reloads
from tests.servers import TEST_SECRET_KEY


@pytest.mark.parametrize("debug", [True, False])
async def test_serving_in_debug_mode_alone_sets_the_loop_handler(
    tmp_path: Path, debug: bool
) -> None:
    loop = asyncio.get_running_loop()
    app = create_app(
        {"SECRET_KEY": TEST_SECRET_KEY, "DATABASE": str(tmp_path / "db.sqlite"), "DEBUG": debug}
    )
    logger_level = logging.getLogger("flaskr_async").level
    unraisable_hook = sys.unraisablehook
    try:
        async with app.test_app():
            handler = loop.get_exception_handler()
            async with app.app_context():
                await quiet_reloads()  # as a reload serves again: the hook is wrapped once
            hook = sys.unraisablehook
        assert (handler is not None) is debug
        if debug:  # wrapped once (an earlier test's app may have wrapped it already)
            assert isinstance(hook, partial) and hook.func is drop_detach_race
            inner = hook.args[0]
            assert not (isinstance(inner, partial) and inner.func is drop_detach_race)
        else:
            assert hook is unraisable_hook
    finally:
        loop.set_exception_handler(None)
        sys.unraisablehook = unraisable_hook
        logging.getLogger("flaskr_async").setLevel(logger_level)


CALLBACK = "Exception in callback"


@pytest.mark.parametrize(
    ("message", "exception", "passed_on"),
    [
        (CALLBACK, asyncio.CancelledError(), False),  # a task the reload cancelled: noise
        (ACCEPT_RACE, AssertionError(), False),  # python/cpython#109564 as the server closes
        (CALLBACK, AssertionError(), True),  # any other failed assertion is a real error
        (ACCEPT_RACE, OSError("too many open files"), True),
        (CALLBACK, RuntimeError("a real error"), True),
        (CALLBACK, None, True),  # a message without an exception
    ],
)
@pytest.mark.parametrize("previous_set", [True, False])
def test_drop_cancellations_passes_on_everything_else(
    message: str,
    exception: BaseException | None,
    passed_on: bool,
    previous_set: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[dict[str, Any]] = []
    context = {"message": message, "exception": exception}
    loop = asyncio.new_event_loop()
    try:
        previous = (lambda _loop, context: seen.append(context)) if previous_set else None
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            drop_cancellations(previous, loop, context)
    finally:
        loop.close()
    if previous_set:
        assert seen == ([context] if passed_on else [])
        assert not caplog.records
    else:
        # asyncio's default handler logs it.
        assert [r.getMessage() for r in caplog.records] == ([message] if passed_on else [])


RACE = TypeError("'NoneType' object is not iterable")


@pytest.mark.parametrize(
    ("exception", "where", "passed_on"),
    [
        (RACE, "_SelectorTransport.__del__", False),  # python/cpython#109564 on 3.13.0
        (OSError("bad file descriptor"), "_SelectorTransport.__del__", True),
        (RACE, "Other.__del__", True),  # the same error anywhere else is a real one
    ],
)
def test_drop_detach_race_passes_on_everything_else(
    exception: BaseException, where: str, passed_on: bool
) -> None:
    seen: list[sys.UnraisableHookArgs] = []
    unraisable = unraisable_args(exception, where)
    drop_detach_race(seen.append, unraisable)
    assert seen == ([unraisable] if passed_on else [])


def unraisable_args(exception: BaseException, where: str) -> sys.UnraisableHookArgs:
    """Capture what Python hands sys.unraisablehook for an exception a ``__del__`` raised."""
    captured: list[sys.UnraisableHookArgs] = []

    class Raises:
        def __del__(self) -> None:
            raise exception

    Raises.__del__.__qualname__ = where
    hook = sys.unraisablehook
    sys.unraisablehook = captured.append
    try:
        Raises()
    finally:
        sys.unraisablehook = hook
    return captured[0]
