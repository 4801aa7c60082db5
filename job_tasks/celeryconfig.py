"""Configure Celery for wordcrawl: every setting used, and why it is set.

Read by `job_tasks.celery_app`; the values that differ between machines (URLs, limits)
come from `Settings`, so this file holds decisions, not addresses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kombu import Queue

from .settings import Settings

# Two queues, so that workers can be given work by kind (`wordcrawl worker --queues`):
# pages to crawl, and the short upkeep tasks (starting scheduled runs, removing expired
# results) that must not wait behind pages. A worker started without --queues takes both,
# and only workers that take `housekeeping` run the deployment's upkeep (upkeep/recovery.py).
CRAWL_QUEUE = "crawl"
HOUSEKEEPING_QUEUE = "housekeeping"
QUEUES = (CRAWL_QUEUE, HOUSEKEEPING_QUEUE)
# The names the tasks (tasks.py) are registered under, and sent by (sending.py).
CRAWL_PAGES = "job_tasks.tasks.crawl_pages"
START_DUE_RUNS = "job_tasks.tasks.start_due_runs"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return Celery's settings for these wordcrawl settings."""
    # A message a worker took but did not acknowledge goes back to the queue after this
    # long. The pages of a dead worker are sent again long before (upkeep/recovery.py); this is
    # the last resort. It must exceed the longest a task can run, or a slow page's message
    # would be handed to a second worker while it runs.
    # Several pages per task (WORDCRAWL_MAX_PAGES_PER_TASK) are crawled side by side, within
    # the same limit.
    visibility_timeout = settings.task_time_limit * 3
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            # Each worker looks for messages past their visibility timeout (those of a
            # killed worker) every interval x throttle seconds: 10 x 10 by kombu's
            # defaults, so a SIGKILLed worker's page waited up to 100 s more. Look at every
            # tick, every tenth of the timeout (1 to 10 s): one small Redis query.
            "unacked_restore_interval": max(1, min(10, visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
        },
        "broker_connection_retry_on_startup": True,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": CRAWL_QUEUE,
        "task_routes": {
            START_DUE_RUNS: {"queue": HOUSEKEEPING_QUEUE},
            "celery.backend_cleanup": {"queue": HOUSEKEEPING_QUEUE},
        },
        # Results (states, worker, timings) in PostgreSQL, beside wordcrawl's own tables.
        "result_backend": settings.celery_result_backend,
        "result_extended": True,  # keep the task name, args and worker in celery_taskmeta
        "database_create_tables_at_setup": False,  # `wordcrawl init-db` creates them once
        # Each state is one statement (storing/result_backend.py): autocommit spares a
        # BEGIN and a COMMIT per state. No ping before each use: a connection that died
        # with a restarted server fails its statement, and Celery's backend then drops its
        # connections and tries again (result_backend_always_retry). A state is not
        # waited for on disk (synchronous_commit off, for these connections only): should
        # PostgreSQL crash, the last fraction of a second of states may be lost, never a
        # page, whose rows are written by wordcrawl's own connections.
        "database_engine_options": {
            "isolation_level": "AUTOCOMMIT",
            "pool_pre_ping": False,
            "pool_recycle": 3600,
            "connect_args": {"options": "-c synchronous_commit=off"},
        },
        # While PostgreSQL is away, a state waits for it (backing off up to 10 s, for
        # minutes) instead of failing after three quick tries. A state that cannot be
        # stored fails its task outside the task's body, and a threads worker then never
        # acknowledges that message: it holds its place in the worker's prefetch, and a
        # worker whose places are all held that way stops taking tasks (seen in
        # tests/integration/test_faults.py, the database restart, before this was set).
        "result_backend_always_retry": True,
        "result_backend_max_retries": 40,
        "result_backend_max_sleep_between_retries_ms": 10_000,
        # The database backend never deletes a result by itself: with result_expires set,
        # `celery beat` schedules celery.backend_cleanup daily (04:00, on the housekeeping
        # queue), which deletes the rows older than this. None (0 days) keeps them forever,
        # and beat then schedules no cleanup. A job's own rows stay until `wordcrawl prune`.
        "result_expires": (
            timedelta(days=settings.result_expires_days) if settings.result_expires_days else None
        ),
        # One result backend per process, not one per thread: it opens a session per
        # call, which is safe from any thread, and so a threads pool shares one pool of
        # PostgreSQL connections (see storing/db.py) instead of one backend per thread.
        "result_backend_thread_safe": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # Reliability: acknowledge a message only when its task has finished, so a worker
        # that dies mid-page does not lose the page; and requeue it if the child process
        # running it was killed. Tasks are idempotent (see storing/pages.py), so a rerun is safe.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Take one message per process at a time: pages take seconds, and a message held
        # by a busy worker is a message an idle worker cannot take.
        "worker_prefetch_multiplier": 1,
        # A page has its own deadline (WORDCRAWL_PAGE_TIMEOUT); these stop a task that
        # hangs anyway. The soft limit raises inside the task so the page is marked failed:
        # 10 s before the hard one, or half way for limits under 20 s (a fixed 10 s would
        # leave any limit up to 11 s a soft limit of 1 s, failing every slower page).
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": max(
            1, settings.task_time_limit - min(10, settings.task_time_limit // 2)
        ),
        # Live state for Flower and AsyncResult: queued (sent), STARTED, then the outcome.
        # `wordcrawl beat` (one per deployment) sends one task per tick; it finds the
        # schedules that are due and starts their runs (storing/schedule_runs.py). Its
        # state lives in PostgreSQL, so beat keeps none: the in-memory scheduler writes no
        # file. A tick expires when the next is sent, so a backlog in the broker does not
        # pile up.
        "beat_scheduler": "celery.beat:Scheduler",
        "beat_schedule": {
            "start-due-runs": {
                "task": START_DUE_RUNS,
                "schedule": float(settings.schedule_tick_seconds),
                "options": {"expires": settings.schedule_tick_seconds},
            }
        },
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
    }
