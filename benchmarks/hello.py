"""The /hello phase (goal 3): the full app's /hello against plain Quart and a bare ASGI callable.

All three on hypercorn with one worker, at 64 and at 1 connection: what the app adds to the
framework, and the framework to the server.
"""

from __future__ import annotations

from benchmarks import servers
from benchmarks.context import Context
from benchmarks.harness import Step


def run_phase(ctx: Context) -> None:
    """Measure /hello of the three servers, interleaved; note their workers' peak RSS."""
    print("\n[1] /hello: bare ASGI, plain Quart, full app (hypercorn, 1 worker)", flush=True)
    started = {
        "bare": ctx.serve("bare", servers.hypercorn(servers.BARE_ASGI), ctx.env()),
        "quart": ctx.serve("quart", servers.hypercorn(servers.PLAIN_QUART), ctx.env()),
        "full": ctx.serve(
            "full-hello", servers.hypercorn("asgi:app"), ctx.env(ctx.databases["small"])
        ),
    }
    for server in started.values():
        ctx.warm(server, "/hello")
    plan = [
        Step(f"hello {name} c{c}", server, "/hello", c)
        for c in (64, 1)
        for name, server in started.items()
    ]
    ctx.interleave(plan, ctx.options.duration)
    for name, server in started.items():
        ctx.results.rss[f"{name} /hello"] = server.peak_rss_mb()
