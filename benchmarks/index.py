"""The index phase (goals 1, 2, 4d, 5): the 50-post index on every server against Flask.

Flask + sqlite3 on gunicorn (a connection per request as in Flaskr, and one reused
connection) against the app as ``make run`` serves it, on hypercorn's asyncio loop, uvicorn
and granian; plus the app with two SQLite connections, with its reads on the loop's thread,
and on 100,000 posts. The CPU time per request of each server's processes is recorded.
"""

from __future__ import annotations

from benchmarks import servers
from benchmarks.context import Context
from benchmarks.harness import Server
from benchmarks.harness import Step

# The index's server table (goal 5): the references, the app as shipped, the other servers.
SERVER_TABLE = ("flaskr", "flask-reuse", "full", "full-asyncio", "uvicorn", "granian")
DEEP = "/?before=50000"  # a page in the middle of 100,000 posts


def run_phase(ctx: Context) -> None:
    """Serve the index on every server, measure them interleaved; note their peak RSS."""
    print(
        "\n[1,2,4,5] index, 50 posts a page: Flask + sqlite3 on gunicorn vs the app on each"
        " server (CPU: the server's processes, us per request)",
        flush=True,
    )
    tree, small = ctx.tree, ctx.databases["small"]
    page = ctx.env(small, POSTS_PER_PAGE="50")
    flask = ctx.env(ctx.databases["flask"], POSTS_PER_PAGE="50")
    started = {
        "flaskr": ctx.serve("flask-flaskr", servers.gunicorn(), flask),
        "flask-reuse": ctx.serve(
            "flask-reuse", servers.gunicorn(), {**flask, "BENCH_REUSE_CONNECTION": "1"}
        ),
        # As make run serves it: the serve command, the shipped hypercorn.toml, one worker.
        "full": ctx.serve("full-index", servers.shipped(tree), page),
        "full-asyncio": ctx.serve(
            "full-index-asyncio", servers.hypercorn_shipped(tree, worker_class="asyncio"), page
        ),
        "uvicorn": ctx.serve("full-index-uvicorn", servers.uvicorn(), page),
        "granian": ctx.serve("full-index-granian", servers.granian(), page),
        # SQLite's default pool is one connection: what a second thread would cost.
        "full-pool2": ctx.serve(
            "full-index-pool2", servers.shipped(tree), {**page, "FLASKR_DATABASE_POOL_SIZE": "2"}
        ),
        "full-on-loop": ctx.serve(
            "full-index-reads-on-the-loop",
            servers.hypercorn_shipped(tree, servers.READS_ON_THE_LOOP),
            page,
        ),
        "full-100k": ctx.serve(
            "full-index-100k",
            servers.shipped(tree),
            ctx.env(ctx.databases["large"], POSTS_PER_PAGE="50"),
        ),
    }
    for server in started.values():
        ctx.warm(server, "/")
    ctx.warm(started["full-100k"], DEEP)

    def watched(label: str, server: Server, connections: int) -> Step:
        return Step(label, server, "/", connections, watch={"server": server.process.pid})

    plan = [watched(f"index {name} c64", started[name], 64) for name in SERVER_TABLE]
    plan += [
        watched(f"index {name} c1", started[name], 1) for name in ("flaskr", "flask-reuse", "full")
    ]
    plan += [
        watched("index full-pool2 c64", started["full-pool2"], 64),
        watched("index full-on-loop c64", started["full-on-loop"], 64),
        Step("index full-100k c1", started["full-100k"], "/", 1),
        Step("index full-100k deep c1", started["full-100k"], DEEP, 1),
    ]
    ctx.interleave(plan, ctx.options.duration)
    for name, server in started.items():
        ctx.results.rss[f"{name} index"] = server.peak_rss_mb()
