"""Post events: written with each post write, read back by every worker in id order.

An event carries its kind and the post's id, nothing of the post itself: its size is bounded
(``MAX_MESSAGE_BYTES``) whatever a post holds, so every queue and history of events is bounded in
bytes by its count. The page already shows each post's text; an event only tells it that a post
was created, edited or deleted, and the page offers what changed through a reload.
"""

from __future__ import annotations

from dataclasses import dataclass

from quart import current_app

from flaskr_async.converters import MAX_ID
from flaskr_async.db import Row
from flaskr_async.db import Statements

# Writers of post events queue here (an advisory lock on PostgreSQL; SQLite's BEGIN IMMEDIATE
# already runs one writer at a time), so events commit in id order and a reader that has
# seen id N never later finds a smaller one committed.
SERIALIZE = "post_event"
BATCH = 500  # events read per query
KINDS = ("created", "updated", "deleted")
# The longest message: both ids at their largest, the longest kind.
MAX_MESSAGE_BYTES = len(f'id: {MAX_ID}\nevent: created\ndata: {{"id": {MAX_ID}}}\n\n')

# From the newest event already read (its own row, if it is still there) onwards.
EVENTS_FROM = "SELECT id, kind, post_id FROM post_event WHERE id >= ? ORDER BY id LIMIT ?"
NEWEST_EVENTS = "SELECT id, kind, post_id FROM post_event ORDER BY id DESC LIMIT ?"


@dataclass(frozen=True)
class Event:
    """One post change, already encoded as a Server-Sent Events message."""

    id: int
    message: bytes


@dataclass(frozen=True)
class News:
    """What a reader found: the events past the newest it had, and whether some were lost."""

    events: list[Event]
    # Pruned before this reader saw them (more writes than LIVE_HISTORY between two reads).
    missed: bool = False


def encode(row: Row) -> Event:
    """Encode one post_event row as an SSE message: its id, its kind, the post's id."""
    text = f'id: {row["id"]}\nevent: {row["kind"]}\ndata: {{"id": {int(row["post_id"])}}}\n\n'
    return Event(int(row["id"]), text.encode())


async def record(tx: Statements, post_id: int, kind: str) -> None:
    """Write a post's change event in the writer's transaction; keep the newest LIVE_HISTORY.

    And one more: a reader whose newest event is the oldest kept has missed nothing, and can
    tell (events_after).
    """
    row = await tx.fetch_one(
        "INSERT INTO post_event (post_id, kind) VALUES (?, ?) RETURNING id", (post_id, kind)
    )
    assert row is not None
    kept = int(current_app.config["LIVE_HISTORY"]) + 1
    await tx.execute("DELETE FROM post_event WHERE id <= ?", (row["id"] - kept,))


async def events_after(db: Statements, last_id: int) -> News:
    """Return every event newer than ``last_id``, oldest first, saying if any were pruned unread.

    Pruning removes the oldest events, so the reader's own newest event is still there unless
    pruning passed it; only then can events it never read be gone. A reader that has seen none
    (``last_id`` 0) cannot tell: PostgreSQL's ids have gaps (a rolled-back write uses one).
    """
    rows = await db.fetch_all(EVENTS_FROM, (last_id, BATCH))
    missed = last_id > 0 and bool(rows) and rows[0]["id"] > last_id
    events = [encode(row) for row in rows if row["id"] > last_id]
    while len(rows) == BATCH:
        rows = await db.fetch_all(EVENTS_FROM, (events[-1].id + 1, BATCH))
        events.extend(encode(row) for row in rows)
    return News(events, missed)


async def newest_events(db: Statements, count: int) -> list[Event]:
    """Return the newest ``count`` events, oldest first."""
    return [encode(row) for row in reversed(await db.fetch_all(NEWEST_EVENTS, (count,)))]
