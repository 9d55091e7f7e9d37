"""The logins phase (goal 4): /hello p99 at 1 connection while 2 clients log in over and over.

Each client (login_storm.py) fetches the form for a real CSRF token, then posts the login: the
password hash runs on every one, and /hello must stay fast beside it.
"""

from __future__ import annotations

from benchmarks import seed
from benchmarks import servers
from benchmarks.context import Context


def run_phase(ctx: Context) -> None:
    """Measure /hello quiet and beside the login storm; note the worker's peak RSS."""
    print("\n[3] /hello c1 while 2 clients log in (real CSRF tokens), full app", flush=True)
    server = ctx.serve(
        "full-logins", servers.hypercorn("asgi:app"), ctx.env(ctx.databases["logins"])
    )
    storm = ["benchmarks.login_storm", server.url, seed.BENCH_USER, seed.BENCH_PASSWORD, "2"]
    labels = ("hello full c1 (quiet)", "hello full c1 under logins")
    ctx.hello_beside(server, labels, storm, ctx.results.logins)
    ctx.results.rss["full under logins"] = server.peak_rss_mb()
