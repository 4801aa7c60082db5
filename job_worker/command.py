"""Build the command line that starts one Celery worker for wordcrawl."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from job_tasks.settings import Settings


def worker_command(
    name: str,
    settings: Settings,
    *,
    queues: Sequence[str] = (),
    loglevel: str = "INFO",
) -> list[str]:
    """Return argv for `celery -A job_tasks worker` with a node name of its own.

    `name` becomes the node name NAME@host (each worker must have its own); `-E` sends the
    task events Flower shows.
    """
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "job_tasks",
        "worker",
        "--hostname",
        f"{name}@%h",
        "--task-events",
        "--loglevel",
        loglevel,
        "--pool",
        settings.worker_pool,
    ]
    if settings.worker_concurrency:
        command += ["--concurrency", str(settings.worker_concurrency)]
    if queues:
        command += ["--queues", ",".join(queues)]
    return command
