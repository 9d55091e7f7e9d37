"""The flood phase (goal 4b): /hello at 1 connection while 4 clients post 100,000-field forms.

Each body (field_flood.py) is refused from its Content-Length; /hello's p50 and p99 beside
the flood are compared with the same server quiet.
"""

from __future__ import annotations

from benchmarks import servers
from benchmarks.context import Context


def run_phase(ctx: Context) -> None:
    """Measure /hello quiet and beside the field flood."""
    print("\n[3b] /hello c1 while 4 clients post 100,000-field login bodies", flush=True)
    server = ctx.serve(
        "full-flood", servers.hypercorn("asgi:app"), ctx.env(ctx.databases["logins"])
    )
    labels = ("hello full c1 (quiet, flood)", "hello full c1 under field flood")
    flood = ["benchmarks.field_flood", server.url, "4"]
    ctx.hello_beside(server, labels, flood, ctx.results.floods)
