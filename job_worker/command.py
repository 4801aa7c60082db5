"""Build the command line that starts one Celery worker for wordcrawl."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from job_tasks.settings import Settings

# Tasks at once per worker when WORDCRAWL_WORKER_CONCURRENCY is 0. A page waits for its
# site far longer than it takes CPU, so one process keeps many pages in flight; more
# threads than this only contend for the process's lock (docs/performance.md, "What each
# setting trades").
DEFAULT_CONCURRENCY = {"threads": 16}
CELERY = (sys.executable, "-m", "celery", "-A", "job_tasks")  # this project's Celery app


def worker_concurrency(settings: Settings) -> int:
    """Return the tasks one worker runs at once; 0 leaves it to Celery (one per CPU)."""
    return settings.worker_concurrency or DEFAULT_CONCURRENCY.get(settings.worker_pool, 0)


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
        *CELERY,
        "worker",
        "--hostname",
        f"{name}@%h",
        "--task-events",
        "--loglevel",
        loglevel,
        "--pool",
        settings.worker_pool,
    ]
    concurrency = worker_concurrency(settings)
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    if queues:
        command += ["--queues", ",".join(queues)]
    return command


def beat_command(loglevel: str = "INFO") -> list[str]:
    """Return argv for `celery -A job_tasks beat`, the one scheduler of a deployment.

    It only sends the tick task (celeryconfig's beat_schedule); what is due lives in
    PostgreSQL, so the in-memory scheduler is enough and no schedule file is written.
    """
    return [*CELERY, "beat", "--scheduler", "celery.beat:Scheduler", "--loglevel", loglevel]
