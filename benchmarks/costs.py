"""The costs phase: what one request costs the event loop, counted in-process.

Runs ``python -m benchmarks.profile_index --costs`` on the served tree: thread round trips,
rows handed over, leases, coroutines and loop turns per request (request_costs.py).
"""

from __future__ import annotations

import subprocess

from benchmarks import servers
from benchmarks.context import Context
from benchmarks.harness import ROOT


def run_phase(ctx: Context) -> None:
    """Run profile_index.py --costs and keep its table for the report."""
    print("\n[costs] counted in-process by profile_index.py --costs", flush=True)
    result = subprocess.run(
        [servers.PYTHON, "-m", "benchmarks.profile_index", "--costs", "--tree", str(ctx.tree)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=ctx.env(),
    )
    ctx.results.costs = result.stdout[result.stdout.index("Per request") :].rstrip()
    print(ctx.results.costs, flush=True)
