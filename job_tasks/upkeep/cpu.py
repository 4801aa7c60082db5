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
from collections import deque
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


def machine_cpu_seconds() -> tuple[float, float]:
    """Return the machine's CPU seconds so far: (busy, all), over all its CPUs."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)  # waiting for a disk is not work
    # Linux counts a virtual machine's guest time in `user` and `nice` too (as psutil does).
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - idle, total


class CpuMeter:
    """The CPU share of this process's tree, and of the machine, over the last seconds.

    Each reading covers the last WINDOW_SECONDS (the readings kept that long), not just the
    time since the previous one: a share over 2 s jumps with every busy moment of the
    machine, and the dashboard would say a different bound at every refresh.
    """

    WINDOW_SECONDS = 10.0

    def __init__(self, pid: int | None = None) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.cpus = psutil.cpu_count() or 1
        self.host = socket.gethostname()
        # The first reading covers the time since the process started (the machine's: since
        # it booted): a share over a few milliseconds would say little.
        age = max(0.0, time.time() - self.process.create_time())
        self._samples: deque[tuple[float, float, float, float]] = deque(
            [(time.monotonic() - age, 0.0, 0.0, 0.0)]
        )

    def read(self) -> dict[str, Any]:
        """Return the shares over the last WINDOW_SECONDS (at first: since the start)."""
        now = (time.monotonic(), tree_cpu_seconds(self.process), *machine_cpu_seconds())
        while len(self._samples) > 1 and self._samples[1][0] <= now[0] - self.WINDOW_SECONDS:
            self._samples.popleft()  # the oldest reading kept is the last one past the window
        then = self._samples[0]
        self._samples.append(now)
        elapsed = max(now[0] - then[0], 1e-3)
        # A child that ended unwaited drops out of the sum for a moment: never below 0.
        percent = max(0.0, (now[1] - then[1]) / elapsed * 100)
        busy, total = now[2] - then[2], now[3] - then[3]
        return {
            "host": self.host,
            "cpus": self.cpus,
            "cpu_percent": round(percent, 1),  # of one CPU: 200 is two CPUs kept busy
            # The machine as a whole (every process, on all its CPUs): is there room left?
            "machine_busy_percent": round(max(0.0, min(100.0, busy / total * 100)), 1)
            if total > 0
            else 0.0,
        }
