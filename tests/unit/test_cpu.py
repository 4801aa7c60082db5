"""A worker's CPU share, read over its whole process tree (job_tasks/upkeep/cpu.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from job_tasks.upkeep.cpu import CpuMeter, tree_cpu_seconds

# A child that keeps one CPU busy for `seconds` of CPU time, then exits.
BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass"


def test_the_cpu_of_a_pool_process_counts_for_its_worker():
    meter = CpuMeter()
    meter.read()
    child = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=30)])
    try:
        # Poll until the child has used 0.3 CPU seconds (a busy machine gives it less).
        deadline = time.monotonic() + 30
        while psutil.Process(child.pid).cpu_times().user < 0.3:
            assert time.monotonic() < deadline, "the child never got the CPU"
            time.sleep(0.05)
        reading = meter.read()
    finally:
        child.kill()
        child.wait()

    assert reading["cpu_percent"] > 5  # the child's time, shared over the time it took
    assert reading["cpus"] == psutil.cpu_count()
    assert 0 <= reading["machine_busy_percent"] <= 100
    assert reading["host"]


def test_a_pool_process_that_ended_still_counts():
    me = psutil.Process()
    before = tree_cpu_seconds(me)
    subprocess.run([sys.executable, "-c", BURN.format(seconds=0.3)], check=True, timeout=60)

    # Waited for, its time is in this process's children times: the sum does not drop.
    assert tree_cpu_seconds(me) >= before + 0.25


def test_a_reading_covers_the_last_window_only():
    meter = CpuMeter()
    meter.WINDOW_SECONDS = 0.2
    meter.read()  # the first reading covers the time since this process started (busy)
    time.sleep(0.3)  # the span measured, not a wait for something to happen

    # The busy start is out of the window: only the idle 0.3 s count.
    assert meter.read()["cpu_percent"] < 50
