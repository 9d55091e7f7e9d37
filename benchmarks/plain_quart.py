"""A plain Quart hello, with nothing but the one route: the framework's own cost."""

from __future__ import annotations

from quart import Quart

app = Quart(__name__)


@app.route("/hello")
async def hello() -> str:
    """Say hello."""
    return "Hello, World!"
