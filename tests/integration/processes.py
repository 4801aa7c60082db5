"""Start and stop real `celery worker` processes for the integration tests.

Each worker is started with the same command `wordcrawl worker` uses (job_worker), in a
process group of its own so that stopping it also stops its pool processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import job_tasks
from job_tasks.settings import Settings
from job_worker import worker_command

START_TIMEOUT = 60.0


def node_name(name: str) -> str:
    """Return the Celery node name a worker started as NAME gets (NAME@host)."""
    return f"{name}@{socket.gethostname()}"


def wait_for(check, timeout: float, message: str, interval: float = 0.1):
    """Poll `check()` until it returns something true; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s: {message}")
        time.sleep(interval)


class WorkerPool:
    """Named worker processes sharing one environment."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.settings = Settings.from_env(self.env)
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, *names: str) -> None:
        """Start workers and wait until each answers a ping."""
        for name in names:
            with open(self.log_path(name), "ab") as log:
                self.processes[name] = subprocess.Popen(
                    worker_command(name, self.settings),
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        wanted = {node_name(name) for name in names}
        wait_for(
            lambda: wanted <= self.online(),
            START_TIMEOUT,
            f"workers {sorted(wanted)} did not answer; logs in {self.log_dir}",
        )

    def online(self) -> set[str]:
        """Return the node names of the workers that answer a ping now."""
        replies = job_tasks.app.control.ping(timeout=0.5) or []
        return {node for reply in replies for node in reply}

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send a signal to a worker, wait for it to exit, and clean up its process group."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.returncode

    def stop_all(self) -> None:
        """Stop every worker: all are told at once, so their warm shutdowns overlap."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name in list(self.processes):
            self.stop(name)
