"""What /proc says about a server's processes: CPU time, resident memory, which is the worker."""

from __future__ import annotations

import os
import re
from pathlib import Path


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) of a process and its live descendants."""
    ticks = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited meanwhile
        ticks += int(stat[11]) + int(stat[12])  # utime, stime: fields 14 and 15 of stat
        pending.extend(int(child) for child in children)
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Return a process's resident memory."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match is not None
    return int(match[1])


def hypercorn_worker(pid: int) -> int:
    """Return the pid of hypercorn's one worker: its child that is not multiprocessing's helper."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = [
        int(child)
        for child in children
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ]
    if len(workers) != 1:
        raise RuntimeError(f"expected one hypercorn worker under {pid}, found {workers}")
    return workers[0]
