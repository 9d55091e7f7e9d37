"""Profile the 50-post index and /hello in-process: ASGI apps driven by a loop, no server or socket.

``.venv/bin/python -m benchmarks.profile_index [--tree DIR] [--requests N] [--top N]``. Prints
the time per request of the app and of the Flask reference (its WSGI app driven the same way),
then cProfile's heaviest functions for the app, and a breakdown by where the time goes; then
/hello of the app against a plain Quart hello, with the app's breakdown.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import request_costs
from benchmarks import seed
from benchmarks.harness import ROOT

# Where a function's own time lands: the first matching fragment of its file path wins.
BUCKETS = (
    ("jinja2", "Jinja rendering"),
    ("flaskr_async/templates", "Jinja rendering"),
    ("<template>", "Jinja rendering"),
    ("aiosqlite", "aiosqlite (queue, futures)"),
    ("sqlite3", "sqlite3 / converters"),
    ("flaskr_async/db", "app database seam"),
    ("quart_wtf", "quart-wtf (CSRF)"),
    ("wtforms", "quart-wtf (CSRF)"),
    ("quart", "Quart request handling"),
    ("werkzeug", "werkzeug (routing, headers, url_for)"),
    ("flask", "flask / sessions"),
    ("itsdangerous", "flask / sessions"),
    ("asyncio", "asyncio event loop"),
    ("selectors", "asyncio event loop (select: waiting on threads)"),
    ("flaskr_async", "app code"),
    ("markupsafe", "Jinja rendering"),
    ("~", "built-ins (strftime, str.join, isinstance, ...)"),
)


def scope(path: str, query: bytes = b"") -> dict[str, Any]:
    """Return an HTTP scope for a GET of ``path``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


async def request(app: Any, path: str, headers: dict[str, str] | None = None) -> int:
    """Send one GET through the ASGI app and return the response status."""
    status = 0
    body = 0

    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            # Like a client that stays connected: Quart cancels this wait when it is done.
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            body += len(message.get("body", b""))

    request_scope = scope(path)
    request_scope["headers"] += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await app(request_scope, receive, send)
    return status


async def drive_quart(
    app: Any, count: int, profiler: cProfile.Profile | None, path: str = "/"
) -> float:
    """Serve ``count`` requests for ``path`` one after another; return seconds per request."""
    async with app.test_app():
        for _ in range(50):
            assert await request(app, path) == 200
        if profiler is not None:
            profiler.enable()
        began = time.perf_counter()
        for _ in range(count):
            await request(app, path)
        elapsed = time.perf_counter() - began
        if profiler is not None:
            profiler.disable()
    return elapsed / count


def drive_flask(count: int) -> float:
    """Call the Flask reference's WSGI app ``count`` times; return seconds per request."""
    from werkzeug.test import EnvironBuilder

    from benchmarks import reference_flask

    environ = EnvironBuilder(path="/", base_url="http://127.0.0.1").get_environ()
    sink: Callable[..., Any] = lambda *args: None  # noqa: E731
    for _ in range(50):
        b"".join(reference_flask.app.wsgi_app(dict(environ), sink))
    began = time.perf_counter()
    for _ in range(count):
        b"".join(reference_flask.app.wsgi_app(dict(environ), sink))
    return (time.perf_counter() - began) / count


def render_costs(app: Any) -> tuple[float, float]:
    """Time the index template alone: Quart's async render vs a sync render of the same page."""
    from quart import g
    from quart import render_template

    from flaskr_async.blog import page_of_posts
    from flaskr_async.db import get_db

    async def measure() -> tuple[float, float]:
        async with app.test_app(), app.test_request_context("/"):
            # preprocess_request's hooks (its signature differs between Quart 0.22 and 0.23).
            for hook in app.before_request_funcs[None]:
                await app.ensure_async(hook)()
            posts, newer, older = await page_of_posts(get_db(), None, None, 50)
            context = {"posts": posts, "newer": newer, "older": older}
            for _ in range(20):
                await render_template("blog/index.html", **context)
            began = time.perf_counter()
            for _ in range(300):
                await render_template("blog/index.html", **context)
            async_cost = (time.perf_counter() - began) / 300
            from jinja2 import Environment

            sync_env = Environment(loader=app.jinja_env.loader, autoescape=True)
            sync_env.globals.update(app.jinja_env.globals)
            template = sync_env.get_template("blog/index.html")
            full: dict[str, Any] = {"g": g, "get_flashed_messages": lambda: [], **context}
            for _ in range(20):
                template.render(full)
            began = time.perf_counter()
            for _ in range(300):
                template.render(full)
            return async_cost, (time.perf_counter() - began) / 300

    return asyncio.run(measure())


def import_from(tree: Path) -> None:
    """Put ``tree`` first on the path: ``flaskr_async`` is imported from it (an older checkout)."""
    sys.path.insert(0, str(tree))


def main() -> None:
    """Seed a database, then time and profile both apps' index."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT, help="project tree to profile")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--costs", action="store_true", help="only count what requests cost")
    args = parser.parse_args()
    tree = args.tree.resolve()
    import_from(tree)
    with tempfile.TemporaryDirectory(prefix="flaskr-profile-") as scratch:
        template = Path(scratch) / "empty.sqlite"
        seed.init_template(tree, template)
        database = seed.seed(template, Path(scratch) / "posts.sqlite", 100, "x")
        os.environ.update(
            FLASKR_DATABASE=str(database),
            FLASKR_POSTS_PER_PAGE="50",
            FLASKR_SECRET_KEY="profile-secret-key-that-is-long-enough-to-serve",
            BENCH_TREE=str(tree),
        )
        import flaskr_async
        from flaskr_async import create_app

        print(f"Profiling {flaskr_async.__file__}")
        if args.costs:
            print_costs(create_app())
            return
        app = create_app()
        quart_cost = asyncio.run(drive_quart(app, args.requests, None))
        flask_cost = drive_flask(args.requests)
        async_render, sync_render = render_costs(create_app())
        print(f"index, 50 posts, in-process, {args.requests} requests one at a time:")
        print(f"  app (Quart + aiosqlite)  {quart_cost * 1e6:8.0f} us/request")
        print(f"  Flask + sqlite3 (WSGI)   {flask_cost * 1e6:8.0f} us/request")
        print(f"  render_template alone: Quart's {async_render * 1e6:.0f} us,")
        print(
            f"    the same template compiled and rendered sync by Jinja {sync_render * 1e6:.0f} us"
        )

        profiler = cProfile.Profile()
        asyncio.run(drive_quart(create_app(), args.requests, profiler))
        print_areas(profiler, args.requests)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())

        from benchmarks import plain_quart

        plain = asyncio.run(drive_quart(plain_quart.app, args.requests, None, "/hello"))
        full = asyncio.run(drive_quart(create_app(), args.requests, None, "/hello"))
        print(f"/hello, in-process, {args.requests} requests one at a time:")
        print(f"  plain Quart {plain * 1e6:6.0f} us/request")
        print(
            f"  app         {full * 1e6:6.0f} us/request ({plain / full:.2f}x plain Quart's rate)"
        )
        profiler = cProfile.Profile()
        asyncio.run(drive_quart(create_app(), args.requests, profiler, "/hello"))
        print_areas(profiler, args.requests)
        print_costs(create_app())


def print_costs(app: Any) -> None:
    """Print what each kind of request costs: round trips, rows, leases, coroutines, turns."""
    paths = {
        "index, anonymous": ("/", False),
        "index, logged in": ("/", True),
        "/hello": ("/hello", False),
        "/hello, with a login cookie": ("/hello", True),
    }
    costs, lease = asyncio.run(request_costs.measure(app, request, paths))
    from benchmarks import plain_quart

    plain, _ = asyncio.run(
        request_costs.measure(plain_quart.app, request, {"/hello, plain Quart": ("/hello", False)})
    )
    print("\nPer request (in-process, one at a time):")
    for name, cost in {**costs, **plain}.items():
        print(f"  {name:<28} {cost.line()}")
    print(f"  one lease and release of a pooled connection: {lease * 1e6:.1f} us")


def print_areas(profiler: cProfile.Profile, requests: int) -> None:
    """Print a profile's own time grouped by area, per request."""
    buckets: dict[str, float] = {}
    total = 0.0
    for (filename, _line, _name), (_cc, _nc, own, _cum, _callers) in pstats.Stats(
        profiler
    ).stats.items():  # type: ignore[attr-defined]
        total += own
        bucket = next((label for part, label in BUCKETS if part in filename), "other")
        buckets[bucket] = buckets.get(bucket, 0.0) + own
    print("\nOwn time by area (cProfile; its overhead inflates every call alike):")
    for label, own in sorted(buckets.items(), key=lambda item: -item[1]):
        print(f"  {label:<50} {own / total * 100:5.1f}%  {own / requests * 1e6:7.0f} us/req")


if __name__ == "__main__":
    main()
