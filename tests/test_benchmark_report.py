"""make bench's report: the slowest requests beside the rate, for every server it runs."""

from __future__ import annotations

import pytest

from benchmarks.context import Options
from benchmarks.context import Results
from benchmarks.harness import Run
from benchmarks.harness import Series
from benchmarks.index import SERVER_TABLE
from benchmarks.report import print_report

OPTIONS = Options(
    duration=1,
    warmup=1,
    reps=1,
    max_steal=5,
    phases=("index",),
    pg_duration=1,
    retries=0,
    keep=False,
)


def results_of_the_index_phase() -> Results:
    """Return an index phase's results: each server its own rate, p50 and p99."""
    results = Results()
    names = [*SERVER_TABLE, "full-pool2", "full-on-loop"]
    labels = [f"index {name} c64" for name in names]
    labels += [f"index {name} c1" for name in ("flaskr", "flask-reuse", "full", "full-100k")]
    for number, label in enumerate(labels, start=1):
        run = Run(
            rps=100.0 * number,
            p50_ms=number + 0.25,
            p99_ms=1000.0 + number,
            errors=0,
            steal=0.0,
            noisy=False,
            cpu_us={"server": 2000.0},
        )
        results.series[label] = Series(label, [run])
    return results


def test_every_server_s_row_shows_its_p50_and_p99_beside_its_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = results_of_the_index_phase()
    print_report(results, OPTIONS)
    report = capsys.readouterr().out
    table = report.split("(goal 5):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split()[1:5] == ["req/s", "p50", "ms", "p99"]
    assert len(table) == 1 + len(SERVER_TABLE) + 2
    for line, name in zip(table[1:], [*SERVER_TABLE, "full-pool2", "full-on-loop"], strict=True):
        series = results.series[f"index {name} c64"]
        rate, p50, p99 = (series.median(what) for what in ("rps", "p50_ms", "p99_ms"))
        assert f"{rate:7.0f} {p50:7.1f} {p99:7.1f}" in line
    # The medians table: every series, whatever the server or connections, with both.
    for label, series in results.series.items():
        (row,) = [line for line in report.splitlines() if line.startswith(label + " ")]
        assert f"{series.median('p50_ms'):8.2f} {series.median('p99_ms'):8.2f}" in row
