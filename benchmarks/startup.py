"""The startup phase (goal 4c): from spawn to the first 200 on /hello, each server in turn.

Run once every other server has stopped, so that nothing else competes for the CPU: the full
app, plain Quart and the bare callable on hypercorn, and ``python -m flaskr_async serve``.
"""

from __future__ import annotations

from benchmarks import servers
from benchmarks.context import Context


def run_phase(ctx: Context) -> None:
    """Start and stop each server at least 5 times, interleaved; note each time to a 200."""
    print("\n[4] start-up to the first 200 (spawn, poll /hello every 5 ms)", flush=True)
    commands = {
        "full": (servers.hypercorn("asgi:app"), ctx.env(ctx.databases["small"])),
        "quart": (servers.hypercorn(servers.PLAIN_QUART), ctx.env()),
        "bare": (servers.hypercorn(servers.BARE_ASGI), ctx.env()),
        # The project's own entry point (make run): one worker served in-process.
        "serve": (servers.serve(), ctx.env(ctx.databases["small"])),
    }
    for _ in range(max(5, ctx.options.reps)):
        for name, (command, env) in commands.items():
            server = ctx.start(f"startup-{name}", command, env)
            server.stop()
            ctx.results.startups.setdefault(name, []).append(server.startup)
            print(f"  start-up {name:<6} {server.startup:.3f} s", flush=True)
    print("  (full, quart, bare: hypercorn -w 1, which spawns its worker; serve: in-process)")
