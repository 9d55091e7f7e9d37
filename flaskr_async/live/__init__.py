"""The live index: post changes streamed to open pages as Server-Sent Events.

Not in Flaskr; skip it on a first reading. This module is the endpoint (``GET /events``) and
its lifecycle; ``create_app`` calls ``init_app`` after the database's, so the streams open
after the database and end before it closes. In the order a change travels:

1. ``blog.py`` writes a post and, in the same transaction, a row of ``post_event``
   (``post_events.py``: ids and kinds only, so an event's size never depends on a post).
2. ``sources.py`` hears of it on every worker and host: SQLite's ``PRAGMA data_version`` poll,
   or PostgreSQL's ``LISTEN``.
3. ``broadcast.py`` hands it to each open stream, each with a byte-bounded queue, a share per
   client and a deadline; a stream that falls behind is told to reload.

``middleware/deadlines.py`` and ``serving/shutdown.py`` call ``end_streams`` when the server
stops, so that shutdown never waits on an open page.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator

from quart import Blueprint
from quart import Quart
from quart import Response
from quart import abort
from quart import current_app
from quart import request
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

from flaskr_async.clients import client_of
from flaskr_async.converters import MAX_ID
from flaskr_async.db import current_database
from flaskr_async.db import logger
from flaskr_async.live.broadcast import Broadcaster
from flaskr_async.live.broadcast import Listener
from flaskr_async.live.broadcast import Unavailable
from flaskr_async.live.post_events import newest_events
from flaskr_async.live.sources import Source
from flaskr_async.live.sources import source_for
from flaskr_async.setting_rules import fair_share

LIVE_KEY = "flaskr_async.live"
SOURCE_KEY = "flaskr_async.live.source"
RETRY_MS = 2000  # the browser's reconnection delay after a dropped stream
RETRY_AFTER = 5  # seconds, on a 503 from a full (or stopping) worker

bp = Blueprint("live", __name__)


class Stream:
    """A stream's body: what its listener is sent, until it ends; its slot freed after."""

    def __init__(self, broadcaster: Broadcaster, listener: Listener) -> None:
        self.broadcaster = broadcaster
        self.listener = listener
        self.messages = self.generate()

    async def generate(self) -> AsyncGenerator[bytes, None]:
        """Yield the retry delay and the catch-up, then what arrives, until the stream ends.

        No timer per stream: the broadcaster's tick sends keep-alive comments and ends streams
        past their lifetime (the browser then reconnects from its last event).
        """
        yield f"retry: {RETRY_MS}\n\n".encode() + self.listener.take()
        while not self.listener.ended:
            await self.listener.ready.wait()
            if data := self.listener.take():
                yield data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        return await self.messages.__anext__()

    async def aclose(self) -> None:
        """Free the stream's slot: Quart calls this however the response ends, even unstarted."""
        self.broadcaster.release(self.listener)
        await self.messages.aclose()


def current_broadcaster() -> Broadcaster:
    """Return the serving app's broadcaster."""
    return current_app.extensions[LIVE_KEY]  # type: ignore[no-any-return]


def end_streams(app: Quart) -> None:
    """End every open stream of a serving app at once: its server is stopping."""
    broadcaster: Broadcaster | None = app.extensions.get(LIVE_KEY)
    if broadcaster is not None:  # None: the app never started serving
        broadcaster.close()


def announce() -> None:
    """Have this worker read its new post events now: the write that made them has committed."""
    source: Source | None = current_app.extensions.get(SOURCE_KEY)
    if source is not None:  # None: not serving (a command), or stopping
        source.changed()


def last_event_id() -> int:
    """Return the newest event this worker has seen, for the page to resume from."""
    return current_broadcaster().last_id


def resume_point() -> int | None:
    """Read where the page left off: the browser's Last-Event-ID, else the page's ``since``."""
    value = request.headers.get("Last-Event-ID") or request.args.get("since")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID))):
        abort(400, "The stream's resume point must be an event id.")
    return int(value)


@bp.route("/events")
async def events() -> ResponseReturnValue:
    """Stream post changes (created, updated, deleted) as Server-Sent Events."""
    broadcaster = current_broadcaster()
    try:
        listener = broadcaster.listen(resume_point(), client_of(request.remote_addr))
    except Unavailable:
        raise ServiceUnavailable(retry_after=RETRY_AFTER) from None
    response = Response(
        Stream(broadcaster, listener),
        content_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    # Quart's RESPONSE_TIMEOUT (60 s) would cut every stream; the stream ends itself after
    # LIVE_STREAM_LIFETIME, and each write has SEND_TIMEOUT (middleware/deadlines.py).
    response.timeout = None
    return response


def open_files() -> int:
    """Count the files this process holds (Linux); 0 where the system does not say."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    except OSError:
        return 0


def fit_to_descriptors(wanted: int, per_client: int, in_use: int) -> tuple[int, int]:
    """Return how many streams fit the open-file limit, and one client's share of them.

    Of the files not ``in_use`` at start-up (the database, the sockets, the logs), half stay
    for ordinary requests however many streams are open; the soft limit is raised if allowed.
    A limit too low even at its hard maximum clamps the streams, and the share below them as
    the settings check would, saying so once.
    """
    if resource is None:  # pragma: no cover - Windows: no such limit to check
        return wanted, per_client
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = in_use + 2 * wanted
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            logger.info("Raised the open-file limit from %d to %d for live streams", soft, raised)
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted, per_client
    fit = max(1, (soft - in_use) // 2)
    share = fair_share(per_client, fit)
    # The share is cut in the same line: a client holding every stream is the same failure
    # as the settings check refuses at creation.
    cut = (
        f", and LIVE_STREAMS_PER_CLIENT = {per_client} cut to {share} so that no client holds"
        " them all"
        if share < per_client
        else ""
    )
    logger.warning(
        "Live index: LIVE_MAX_STREAMS = %d does not fit the open-file limit (%d, %d of them in"
        " use at start-up): at most %d streams%s; raise the limit (LimitNOFILE= in the"
        " systemd unit)",
        wanted,
        soft,
        in_use,
        fit,
        cut,
    )
    return fit, share


async def serve_live() -> AsyncGenerator[None, None]:
    """Broadcast post changes while the app serves (a while_serving hook after the database's)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined, unused-ignore]
    config = app.config
    max_streams, per_client = fit_to_descriptors(
        int(config["LIVE_MAX_STREAMS"]), int(config["LIVE_STREAMS_PER_CLIENT"]), open_files()
    )
    broadcaster = Broadcaster(
        max_streams=max_streams,
        per_client=per_client,
        queue_size=int(config["LIVE_QUEUE_SIZE"]),
        history=int(config["LIVE_HISTORY"]),
        lifetime=float(config["LIVE_STREAM_LIFETIME"]),
    )
    source = source_for(current_database(), float(config["LIVE_POLL_INTERVAL"]))
    try:
        reader = await source.open()
        broadcaster.publish(await newest_events(reader, int(config["LIVE_HISTORY"])))
    except BaseException:
        await source.close()
        raise
    tasks = {
        asyncio.create_task(source.run(lambda: broadcaster.last_id, broadcaster.hear)),
        asyncio.create_task(broadcaster.keep_alive(float(config["LIVE_KEEPALIVE_INTERVAL"]))),
    }
    app.extensions[LIVE_KEY] = broadcaster
    app.extensions[SOURCE_KEY] = source
    try:
        yield
    finally:
        del app.extensions[LIVE_KEY], app.extensions[SOURCE_KEY]
        broadcaster.close()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)  # not `await`: a cancellation of this hook still counts
        await source.close()
        logger.info("Live index stopped")


def init_app(app: Quart) -> None:
    """Serve the event stream and broadcast while the app serves."""
    app.register_blueprint(bp)
    app.while_serving(serve_live)
