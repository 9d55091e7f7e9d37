"""Post events: written with each post write, read back by every worker in id order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from quart import current_app

from flaskr_async.db import Row
from flaskr_async.db import Statements

# Writers of post events queue here (an advisory lock on PostgreSQL; SQLite's BEGIN IMMEDIATE
# already runs one writer at a time), so events commit in id order and a reader that has
# seen id N never later finds a smaller one committed.
SERIALIZE = "post_event"
BATCH = 500  # events read per query

# Only public post data the page shows; a deleted post's event carries its id alone.
EVENT_COLUMNS = (
    "SELECT e.id, e.kind, e.post_id, p.title, p.body, p.created, u.username"
    ' FROM post_event e LEFT JOIN post p ON p.id = e.post_id LEFT JOIN "user" u'
    " ON u.id = p.author_id"
)
EVENTS_AFTER = EVENT_COLUMNS + " WHERE e.id > ? ORDER BY e.id LIMIT ?"
NEWEST_EVENTS = EVENT_COLUMNS + " ORDER BY e.id DESC LIMIT ?"


@dataclass(frozen=True)
class Event:
    """One post change, already encoded as a Server-Sent Events message."""

    id: int
    message: bytes


def encode(row: Row) -> Event:
    """Encode one post_event row (joined with its post, if it still exists) as an SSE message."""
    data: dict[str, Any] = {"id": row["post_id"]}
    if row["kind"] != "deleted" and row["title"] is not None:
        data.update(
            title=row["title"],
            body=row["body"],
            author=row["username"],
            created=row["created"].strftime("%Y-%m-%d"),
        )
    # json.dumps escapes newlines, so the data is one line as SSE requires.
    text = f"id: {row['id']}\nevent: {row['kind']}\ndata: {json.dumps(data)}\n\n"
    return Event(int(row["id"]), text.encode())


async def record(tx: Statements, post_id: int, kind: str) -> None:
    """Write a post's change event in the writer's transaction; keep the newest LIVE_HISTORY."""
    row = await tx.fetch_one(
        "INSERT INTO post_event (post_id, kind) VALUES (?, ?) RETURNING id", (post_id, kind)
    )
    assert row is not None
    await tx.execute(
        "DELETE FROM post_event WHERE id <= ?", (row["id"] - current_app.config["LIVE_HISTORY"],)
    )


async def events_after(db: Statements, last_id: int) -> list[Event]:
    """Return every event newer than ``last_id``, oldest first."""
    events: list[Event] = []
    while True:
        rows = await db.fetch_all(EVENTS_AFTER, (last_id, BATCH))
        events.extend(encode(row) for row in rows)
        if len(rows) < BATCH:
            return events
        last_id = events[-1].id


async def newest_events(db: Statements, count: int) -> list[Event]:
    """Return the newest ``count`` events, oldest first."""
    return [encode(row) for row in reversed(await db.fetch_all(NEWEST_EVENTS, (count,)))]
