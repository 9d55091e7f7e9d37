"""The order of a run's tests: `make test` starts each Python's suite at another third."""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate

import pytest


def rotated(
    items: list[pytest.Item], start: float, cost: Callable[[pytest.Item], float] = lambda _: 1
) -> list[pytest.Item]:
    """Return the tests from the module nearest ``start`` (0 to 1) of the run on, then the rest.

    `make test` starts each Python's suite at another third (noxfile.py): in the same order the
    three wait on their servers at the same moments and leave the cores idle together. The
    point is one of the run's time, as ``cost`` (any unit) expects each test to take, not of
    its tests: 800 settings tests take less than one browser test. Whole modules move, so a
    module's fixtures are still made once.
    """
    before = list(accumulate((cost(item) for item in items), initial=0.0))
    target = before[-1] * start
    firsts = [
        n
        for n in range(len(items) + 1)
        if n in (0, len(items)) or items[n].path != items[n - 1].path
    ]
    # The module start nearest the point; of two as near, the later.
    cut = min(reversed(firsts), key=lambda n: abs(before[n] - target))
    return items[cut:] + items[:cut]
