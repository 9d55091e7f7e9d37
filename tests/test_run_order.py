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


def test_a_third_is_one_of_the_expected_time_not_of_the_tests() -> None:
    # b.py's one slow test takes as long as five quick ones.
    names = ["a.py", "b.py"] + ["c.py"] * 4
    items = cast(list[pytest.Item], [SimpleNamespace(path=Path(name)) for name in names])

    def cost(item: pytest.Item) -> float:
        return 5 if item.path.name == "b.py" else 1

    firsts = [str(rotated(items, start, cost)[0].path) for start in (0, 1 / 3, 2 / 3)]
    assert firsts == ["a.py", "b.py", "c.py"]
    # Counted in tests, the thirds would begin at c.py, then back at a.py with the first.
    assert [str(rotated(items, start)[0].path) for start in (1 / 3, 2 / 3)] == ["c.py", "a.py"]
