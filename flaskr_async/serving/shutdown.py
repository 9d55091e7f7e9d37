"""Stopping the serve command: end the live streams first, so shutdown never waits on them.

hypercorn 0.18 tells the app of a shutdown (ASGI lifespan.shutdown) only after every connection
has ended or graceful_timeout has passed: an endless stream would hold shutdown for the whole
timeout, then be cancelled. Its shutdown trigger is the one earlier hook, so the serve command
gives hypercorn a trigger of its own that ends the app's streams and then returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from functools import partial
from multiprocessing.synchronize import Event as EventType

import hypercorn.asyncio.run
from hypercorn.asyncio.run import _run
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config
from hypercorn.config import Sockets
from hypercorn.utils import check_multiprocess_shutdown_event
from hypercorn.utils import load_application
from quart import Quart

from flaskr_async.live import end_streams
from flaskr_async.serving.event_loops import event_loop_factory


async def signalled() -> None:
    """Return at the first SIGTERM or SIGINT, as hypercorn's own trigger does."""
    received = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, received.set)
        except NotImplementedError:
            # Windows' event loops have no add_signal_handler: hypercorn falls back the same way.
            signal.signal(number, lambda *_: loop.call_soon_threadsafe(received.set))
    await received.wait()


async def stopped(app: Quart) -> None:
    """Wait for SIGTERM or SIGINT, then end the app's streams (one worker, in this process)."""
    await signalled()
    end_streams(app)


def worker(  # pragma: no cover - runs in hypercorn's worker processes (tests/system)
    config: Config, sockets: Sockets | None = None, shutdown_event: EventType | None = None
) -> None:
    """Run hypercorn's asyncio worker, whose shutdown trigger first ends the app's streams."""
    wrapper = load_application(config.application_path, config.wsgi_max_body_size)
    app: Quart = wrapper.app  # type: ignore[attr-defined]  # an ASGIWrapper: Quart is ASGI
    assert shutdown_event is not None  # hypercorn.run passes one to every worker it starts
    # hypercorn.run SIGTERMs the workers still running once the first has exited, which cut a
    # slower worker's database close short; and systemd's default KillMode signals the whole
    # group. The master's shutdown event already stops this worker, bounded by graceful_timeout.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    async def trigger() -> None:
        await check_multiprocess_shutdown_event(shutdown_event, asyncio.sleep)
        end_streams(app)

    _run(
        partial(worker_serve, wrapper, config, sockets=sockets),
        debug=config.debug,
        shutdown_trigger=trigger,
        loop_factory=event_loop_factory(config),  # uvloop's where worker_class names it
    )


@contextlib.contextmanager
def streams_end_first() -> Iterator[None]:
    """Make hypercorn.run start our worker in place of its asyncio and uvloop ones."""
    # hypercorn.run looks its worker up by name at each call, and its worker processes import
    # this module's `worker` by name: no other hook reaches the workers' shutdown. (Its trio
    # worker is left as it is: the app runs on asyncio.)
    module = hypercorn.asyncio.run
    originals = module.asyncio_worker, module.uvloop_worker
    module.asyncio_worker = module.uvloop_worker = worker
    try:
        yield
    finally:
        module.asyncio_worker, module.uvloop_worker = originals
