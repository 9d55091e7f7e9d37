"""The printed report: every series' medians, the postgres and server tables, the goals met.

Printed once every phase but ``live`` has run, from the ``Results`` they filed.
"""

from __future__ import annotations

import statistics

from benchmarks.context import Options
from benchmarks.context import Results
from benchmarks.index import SERVER_TABLE
from benchmarks.postgres import BACKENDS
from benchmarks.postgres import ENDPOINTS
from benchmarks.postgres import WORKERS
from benchmarks.postgres import label
from benchmarks.servers import DESCRIPTIONS


def print_report(results: Results, options: Options) -> None:
    """Print every series' medians, the goals with their ratios, and the runs' steal."""
    s = results.series
    print("\n" + "=" * 100)
    others = [series for series in s.values() if series.label not in results.postgres_labels]
    if others:
        print(
            f"Medians over counted runs ({options.reps} repetitions x"
            f" {options.duration:g} s, wrk -t1; a run with steal > {options.max_steal:g}%"
            " is not counted)"
        )
        print(
            f"{'measurement':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
            f" {'steal % per run':>22} {'counted':>8}"
        )
    for series in others:
        steals = " ".join(f"{run.steal:.1f}{'*' if run.noisy else ''}" for run in series.runs)
        print(
            f"{series.label:<34} {series.median('rps'):9.0f} {series.median('p50_ms'):8.2f}"
            f" {series.median('p99_ms'):8.2f} {sum(r.errors for r in series.runs):7d}"
            f" {steals:>22} {len(series.clean()):>4}/{len(series.runs)}"
        )
    if results.rss:
        print("\nWorker peak RSS (VmHWM):")
    for name, megabytes in results.rss.items():
        print(f"  {name:<24} {megabytes:7.1f} MB")
    if results.startups:
        print("\nStart-up to first 200 (s): ")
    for name, times in results.startups.items():
        print(
            f"  {name:<6} median {statistics.median(times):.3f}"
            f"  runs {' '.join(f'{t:.3f}' for t in times)}"
        )
    if results.logins:
        print("\nLogin storm per repetition: " + "; ".join(results.logins))
    if results.floods:
        print("\nField flood per repetition: " + "; ".join(results.floods))
    if results.postgres_labels:
        print_postgres(results, options)
    if results.costs:
        print("\n" + results.costs)

    if "index full c64" in s:
        print_server_table(results)
    met = goals(results)
    if met:
        print("\nGoals:")
    for name, value, ok in met:
        print(f"  {'MET ' if ok else 'MISS'}  {name:<44} {value}")
    noisy = [series.label for series in s.values() if any(run.noisy for run in series.runs)]
    if noisy:
        print(f"\nNoisy runs (not counted) in: {', '.join(noisy)}")
    print("=" * 100, flush=True)


def goals(results: Results) -> list[tuple[str, str, bool]]:
    """Return the goals that the phases which ran can tell: name, figures, and whether met."""
    s = results.series

    def rps(name: str) -> float:
        return s[name].median("rps")

    found: list[tuple[str, str, bool]] = []
    if "hello full c64" in s:
        ratio = rps("hello full c64") / rps("hello quart c64")
        found.append(
            (
                "3 /hello full app / plain Quart, c64",
                f"{ratio:.2f}x (>= 0.95x); plain Quart / bare ASGI"
                f" {rps('hello quart c64') / rps('hello bare c64'):.2f}x",
                ratio >= 0.95,
            )
        )
    if "index full c64" in s:
        c64 = rps("index full c64") / rps("index flaskr c64")
        c1 = rps("index full c1") / rps("index flaskr c1")
        found.append(
            (
                "1 index, as shipped / Flaskr-style, c64 and c1",
                f"{c64:.2f}x and {c1:.2f}x (>= 1.0x); vs reused connection"
                f" {rps('index full c64') / rps('index flask-reuse c64'):.2f}x and"
                f" {rps('index full c1') / rps('index flask-reuse c1'):.2f}x",
                c64 >= 1.0 and c1 >= 1.0,
            )
        )
        fastest = max(SERVER_TABLE[2:], key=lambda name: rps(f"index {name} c64"))
        ratio = rps(f"index {fastest} c64") / rps("index flask-reuse c64")
        found.append(
            (
                "2 index, fastest server / reused connection c64",
                f"{ratio:.2f}x (>= 1.2x) on {fastest}",
                ratio >= 1.2,
            )
        )
    if "hello full c1 under logins" in s:
        p99 = s["hello full c1 under logins"].median("p99_ms")
        rss = results.rss["full under logins"]
        found.append(
            (
                "4 /hello p99 c1 under logins; peak RSS",
                f"{p99:.2f} ms (< 15 ms); {rss:.0f} MB (< 150 MB)",
                p99 < 15 and rss < 150,
            )
        )
    if "hello full c1 under field flood" in s:
        flooded = s["hello full c1 under field flood"]
        quiet = s["hello full c1 (quiet, flood)"]
        found.append(
            (
                "4b /hello c1 under a 100,000-field flood",
                f"p50 {flooded.median('p50_ms'):.2f} ms vs {quiet.median('p50_ms'):.2f} ms"
                f" quiet; p99 {flooded.median('p99_ms'):.2f} ms vs"
                f" {quiet.median('p99_ms'):.2f} ms",
                flooded.median("p99_ms") < 15,
            )
        )
    if "full" in results.startups:
        median = statistics.median(results.startups["full"])
        value = f"{median:.3f} s (< 0.6 s) with hypercorn asgi:app"
        if "serve" in results.startups:
            value += f"; {statistics.median(results.startups['serve']):.3f} s with make run's serve"
        found.append(("4c start-up to first 200", value, median < 0.6))
    if "index full-100k c1" in s:
        ratio = s["index full-100k c1"].median("p50_ms") / s["index full c1"].median("p50_ms")
        found.append(
            (
                "4d index p50 c1, 100,000 / 100 posts",
                f"{ratio:.2f}x (<= 1.5x)",
                ratio <= 1.5,
            )
        )
    return found


def print_postgres(results: Results, options: Options) -> None:
    """Print the postgres phase: medians with CPU per request, ratios, scaling, breakdown."""
    s = results.series
    print(
        f"\nPostgreSQL vs SQLite, c64: medians of {options.reps} x"
        f" {options.pg_duration:g} s (a run with steal > {options.max_steal:g}% is not"
        " counted). CPU us per request:"
        "\napp = hypercorn master and workers, pg = the PostgreSQL server, wrk = the load"
        " generator, rest = every other process of the machine (other tenants, kernel threads)"
    )
    print(
        f"{'measurement':<26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'steal % per run':>17} {'counted':>7} {'app':>6} {'pg':>5} {'wrk':>5} {'rest':>5}"
    )
    for name in results.postgres_labels:
        series = s[name]
        steals = " ".join(f"{run.steal:.1f}{'*' if run.noisy else ''}" for run in series.runs)
        print(
            f"{name:<26} {series.median('rps'):8.0f} {series.median('p50_ms'):8.2f}"
            f" {series.median('p99_ms'):8.2f} {sum(r.errors for r in series.runs):7d}"
            f" {steals:>17} {len(series.clean()):>3}/{len(series.runs):<3}"
            f" {series.median_cpu('app'):6.0f} {series.median_cpu('postgres'):5.0f}"
            f" {series.median_cpu('wrk'):5.0f} {series.median_cpu('rest'):5.0f}"
        )

    def ratio(numerator: str, denominator: str, attribute: str) -> str:
        return f"{s[numerator].median(attribute) / s[denominator].median(attribute):.2f}x"

    print("\npostgresql / sqlite (req/s: above 1 favours postgresql; p50, p99: below 1)")
    print(f"{'':<30} {'req/s':>6} {'p50':>6} {'p99':>6}")
    for workers in WORKERS:
        for endpoint in ENDPOINTS:
            pg, lite = (label(endpoint, backend, workers) for backend in BACKENDS[::-1])
            print(
                f"  {endpoint:<6} w{workers}                  {ratio(pg, lite, 'rps'):>6}"
                f" {ratio(pg, lite, 'p50_ms'):>6} {ratio(pg, lite, 'p99_ms'):>6}"
            )
    print("2 workers / 1 worker, req/s")
    for backend in BACKENDS:
        for endpoint in ENDPOINTS:
            two, one = (label(endpoint, backend, workers) for workers in WORKERS[::-1])
            print(f"  {endpoint:<6} {backend:<22} {ratio(two, one, 'rps'):>6}")
    print("\nWhere the time goes:")
    print(results.breakdown)


def print_server_table(results: Results) -> None:
    """Print goal 5's table: the index on each server against both Flask references."""
    s = results.series
    flaskr, reuse = (s[f"index {name} c64"].median("rps") for name in SERVER_TABLE[:2])
    print("\nIndex, 50 posts, 64 connections, one worker each (goal 5):")
    rows = [(DESCRIPTIONS[name], name) for name in SERVER_TABLE]
    rows += [(f"{name} (shipped settings)", name) for name in ("full-pool2", "full-on-loop")]
    width = max(len(description) for description, _ in rows)
    print(
        f"  {'server':<{width}} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10}"
        f" {'/ Flaskr':>9} {'/ reuse':>8}"
    )
    for description, name in rows:
        series = s[f"index {name} c64"]
        value = series.median("rps")
        # The tail beside the rate: a server can lead on req/s while some connections starve.
        print(
            f"  {description:<{width}} {value:7.0f} {series.median('p50_ms'):7.1f}"
            f" {series.median('p99_ms'):7.1f} {series.median_cpu('server'):10.0f}"
            f" {value / flaskr:8.2f}x {value / reuse:7.2f}x"
        )
