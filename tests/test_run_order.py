"""The suite's order when `make test` starts a Python's run from another third (run_order.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from tests.run_order import rotated

MODULES = ["a.py"] * 3 + ["b.py"] * 4 + ["c.py"] * 2 + ["d.py"]


@pytest.mark.parametrize(
    ("start", "first"),
    [(0, "a.py"), (1 / 3, "b.py"), (2 / 3, "c.py"), (0.5, "c.py"), (0.95, "a.py"), (1, "a.py")],
)
def test_a_run_starts_at_a_module_s_first_test_and_keeps_every_test_once(
    start: float, first: str
) -> None:
    items = [SimpleNamespace(path=Path(name), index=index) for index, name in enumerate(MODULES)]
    order = rotated(cast(list[pytest.Item], items), start)
    names = [str(item.path) for item in order]
    assert names[0] == first
    assert sorted(item.index for item in cast(list[SimpleNamespace], order)) == list(range(10))
    # Each module's tests stay together and in their order.
    for name in set(MODULES):
        positions = [n for n, item in enumerate(names) if item == name]
        assert positions == list(range(positions[0], positions[0] + len(positions)))
    assert [i.index for i in cast(list[SimpleNamespace], order) if str(i.path) == "b.py"] == [
        3,
        4,
        5,
        6,
    ]
