"""Send pages to the workers: the one place that sends the crawl task.

The second step of the flow (manager → broker): the manager's submissions, the workers'
follow-up pages, scheduled runs, dead letters and the upkeep's recoveries all send their
pages here. A task is sent by its registered name (celeryconfig.py names the tasks)
through the Celery app, so a sender never imports the task's code, and the manager never
loads the worker's fetcher.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .celery_app import app
from .celeryconfig import CRAWL_PAGES, CRAWL_QUEUE
from .upkeep.broker import queue_length

if TYPE_CHECKING:
    from .storing.release import NewPage

SHOWN_ARGS_CHARS = 300  # what Flower shows of a task's pages (ids and URLs)
QUEUE_CHECK_SECONDS = 1.0  # how long one process trusts what it last read of the queue

_last_check = (float("-inf"), False)  # (when, whether crawl messages were waiting)


def enqueue_pages(pages: Iterable[NewPage]) -> None:
    """Send pages to the workers over one broker connection: one crawl_pages message per
    task id, with the pages that share it (storing.release.task_ids_for)."""
    groups: dict[str, list[NewPage]] = {}
    for page in pages:
        groups.setdefault(page.task_id, []).append(page)
    with app.producer_or_acquire() as producer:
        for task_id, group in groups.items():
            send_pages(group, task_id, producer=producer)


def send_pages(pages: list[NewPage], task_id: str, **options: Any) -> None:
    """Send one crawl_pages message (`options` as Celery's apply_async takes them, e.g. a
    countdown); Flower shows its pages' ids and URLs as its arguments."""
    app.send_task(
        CRAWL_PAGES,
        args=[[page.id for page in pages]],
        task_id=task_id,
        argsrepr=args_shown(pages),
        **options,
    )


def args_shown(pages: list[NewPage]) -> str:
    """Say what a crawl_pages message carries, for Flower: its argument (the page ids) and
    the pages' URLs, in at most SHOWN_ARGS_CHARS characters."""
    shown = f"[{[page.id for page in pages]}] {' '.join(page.url for page in pages)}"
    if len(shown) > SHOWN_ARGS_CHARS:
        shown = shown[: SHOWN_ARGS_CHARS - 1] + "…"
    return shown


def crawl_queue_waiting() -> bool:
    """Whether crawl messages wait in the broker for a free worker (every worker busy).

    Read from Redis at most once every QUEUE_CHECK_SECONDS in a process: a page released
    meanwhile is grouped by what was true a moment ago, which is as good.
    """
    global _last_check
    checked_at, waiting = _last_check
    if time.monotonic() - checked_at >= QUEUE_CHECK_SECONDS:
        waiting = queue_length(app, [CRAWL_QUEUE]) > 0
        _last_check = (time.monotonic(), waiting)
    return waiting
