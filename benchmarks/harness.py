"""The measuring machinery: start a server, wait for its first 200, drive it with wrk, read steal.

Stateless: the phases keep what they measure in a ``Context`` (context.py). Every server runs
on a free port of 127.0.0.1 in a session of its own; wrk runs with one thread and report.lua,
which prints its summary as JSON; CPU steal comes from /proc/stat around each run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from benchmarks.processes import tree_cpu_seconds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the project the harness belongs to: its default tree
REPORT_LUA = HERE / "report.lua"


@dataclass
class Server:
    """A server process started by the harness."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    startup: float = 0.0

    def worker_pid(self) -> int:
        """Return the pid of the one worker (hypercorn and gunicorn both serve from a child)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        workers = [
            int(child)
            for child in children
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
        ]
        if not workers:  # served in-process (the serve command, uvicorn)
            return pid
        if len(workers) != 1:
            raise RuntimeError(f"{self.name}: expected one worker, found {workers}")
        return workers[0]

    def peak_rss_mb(self) -> float:
        """Return the worker's peak resident memory (VmHWM) in MB."""
        for line in Path(f"/proc/{self.worker_pid()}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        """SIGTERM the master, then SIGKILL whatever is left of its process group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class Run:
    """One wrk run: throughput, latency, errors and the CPU steal while it ran."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    steal: float
    noisy: bool
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU time per request, by process


@dataclass
class Series:
    """The repeated runs of one measurement."""

    label: str
    runs: list[Run] = field(default_factory=list)

    def clean(self) -> list[Run]:
        """Return the runs that count (all of them if every run was noisy)."""
        clean = [run for run in self.runs if not run.noisy]
        return clean or self.runs

    def median(self, attribute: str) -> float:
        """Return the median of one attribute over the counted runs."""
        return float(statistics.median(getattr(run, attribute) for run in self.clean()))

    def median_cpu(self, name: str) -> float:
        """Return the median CPU time per request of one watched process, in us."""
        return float(statistics.median(run.cpu_us.get(name, 0.0) for run in self.clean()))


@dataclass
class Step:
    """One measurement of a plan: wrk against a server's path, with report.lua's settings."""

    label: str
    server: Server
    path: str
    connections: int
    env: Mapping[str, str] = field(default_factory=dict)
    watch: Mapping[str, int] = field(default_factory=dict)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_times() -> tuple[int, int, int]:
    """Return (steal, busy, total) jiffies of all CPUs from the first line of /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return fields[7], sum(fields) - idle - fields[7], sum(fields)


def children_cpu_seconds() -> float:
    """Return the CPU time of this process's waited-for children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def answers(port: int, path: str = "/hello") -> bool:
    """Tell whether the server on ``port`` answers ``path`` with a 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def start(name: str, command: Sequence[str], env: dict[str, str], cwd: Path, logs: Path) -> Server:
    """Spawn a server and poll /hello until it answers; record the time to the first 200."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    log = logs / f"{name}.log"
    began = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = began + 30
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log.read_text()}")
        if answers(port):
            server.startup = time.perf_counter() - began
            return server
        time.sleep(0.005)
    server.stop()
    raise TimeoutError(f"{name} did not answer within 30 s:\n{log.read_text()}")


def wrk(
    url: str,
    connections: int,
    seconds: float,
    max_steal: float,
    env: Mapping[str, str] | None = None,
    watch: Mapping[str, int] | None = None,
) -> Run:
    """Drive ``url`` with wrk (one thread) and return the run, with its CPU steal.

    ``env`` reaches report.lua (a POST body, a cookie, the expected status); ``watch`` names
    process trees whose CPU time per request is recorded, with wrk's own and the rest of the
    machine's (everything else that ran meanwhile).
    """
    watch = watch or {}
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in watch.items()}
    wrk_before = children_cpu_seconds()
    steal_before, busy_before, total_before = cpu_times()
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(REPORT_LUA),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    steal_after, busy_after, total_after = cpu_times()
    cpu_us = {name: tree_cpu_seconds(pid) - cpu_before[name] for name, pid in watch.items()}
    cpu_us["wrk"] = children_cpu_seconds() - wrk_before
    # Every CPU's busy time, less what the watched processes and wrk used: the rest.
    busy = (busy_after - busy_before) / os.sysconf("SC_CLK_TCK")
    cpu_us["rest"] = busy - sum(cpu_us.values())
    line = next(line for line in result.stdout.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    requests = max(1, data["requests"])
    steal = 100 * (steal_after - steal_before) / max(1, total_after - total_before)
    # With an expected status, every other response is an error (wrk counts only >= 400).
    status = "unexpected" if env and "BENCH_EXPECT_STATUS" in env else "status"
    errors = sum(data[key] for key in ("connect", "read", "write", status, "timeout"))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        steal=steal,
        noisy=steal > max_steal,
        cpu_us={name: cpu * 1e6 / requests for name, cpu in cpu_us.items()},
    )
