"""How much CPU a worker uses: what its heartbeat (heartbeat.py) adds to each census report.

A worker is a process tree: its main process (Celery's consumer, this heartbeat) and its
pool's processes (prefork), or one process with threads. Between two reports, the CPU time
the whole tree used, over the wall-clock time that passed, is the worker's CPU share:
100 is one CPU kept busy. The machine's own share (every process on it, PostgreSQL's and
the manager's too) says whether its CPUs have room left. The dashboard puts the two side
by side to say where the bound is (job_manager/bounds.py).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import psutil


def tree_cpu_seconds(root: psutil.Process) -> float:
    """Return the CPU seconds a process and all its descendants have used so far.

    A pool process that ended and was waited for is in its parent's `children_*` times, so
    the sum does not drop when one is replaced (prefork's max-tasks-per-child, a crash).
    """
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # it ended between the listing and the reading
            continue
        total += child_times.user + child_times.system
    return total


class CpuMeter:
    """The CPU share of this process's tree, and of the machine, since the last reading."""

    def __init__(self, pid: int | None = None) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.cpus = psutil.cpu_count() or 1
        self.host = socket.gethostname()
        # The first reading covers the time since the process started: a share over a
        # few milliseconds would say little (one busy moment of a starting pool reads 500%).
        age = max(0.0, time.time() - self.process.create_time())
        self._last = (time.monotonic() - age, 0.0)
        psutil.cpu_percent(interval=None)  # starts the machine's count; the next call answers

    def read(self) -> dict[str, Any]:
        """Return the shares since the last reading (the first: since the process started)."""
        now, used = time.monotonic(), tree_cpu_seconds(self.process)
        then, used_then = self._last
        self._last = (now, used)
        elapsed = max(now - then, 1e-3)
        # A child that ended unwaited drops out of the sum for a moment: never below 0.
        percent = max(0.0, (used - used_then) / elapsed * 100)
        return {
            "host": self.host,
            "cpus": self.cpus,
            "cpu_percent": round(percent, 1),  # of one CPU: 200 is two CPUs kept busy
            "machine_busy_percent": round(
                psutil.cpu_percent(interval=None), 1
            ),  # all CPUs, all processes
        }
