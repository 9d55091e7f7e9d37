"""The order of a run's tests: `make test` starts each Python's suite at another third."""

from __future__ import annotations

import pytest


def rotated(items: list[pytest.Item], start: float) -> list[pytest.Item]:
    """Return the tests from the module at ``start`` (0 to 1) of the run onwards, then the rest.

    `make test` starts each Python's suite at another third (noxfile.py): in the same order the
    three wait on their servers at the same moments and leave the cores idle together. Whole
    modules move, so a module's fixtures are still made once.
    """
    cut = round(len(items) * start)
    while 0 < cut < len(items) and items[cut].path == items[cut - 1].path:
        cut += 1
    return items[cut:] + items[:cut]
