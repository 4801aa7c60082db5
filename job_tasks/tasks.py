"""The Celery tasks the workers run: `crawl_pages`, and the schedules' `start_due_runs`.

`crawl_pages` crawls the pages whose ids its message carries: one page alone, or up to
WORDCRAWL_MAX_PAGES_PER_TASK of a job's pages sent together when it has a backlog
(storing/release.py, fair sharing). It reads like the flow: claim the pages,
fetch each page and count its words (side by side, each in a thread of its own), store what
was counted. Each step is a plain function in its own module; this file only wires them to
Celery (states, retries, time limits) and to the worker's resources (fetching/resources.py).
sending.py names the tasks and sends them; `start_due_runs` starts the schedules' due runs
(storing/schedule_runs.py).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from .celery_app import app
from .celeryconfig import CRAWL_PAGES, START_DUE_RUNS
from .fetching.resources import drop_fetch_threads, fetch_threads, worker_fetcher
from .page_errors import PageError, Timeout
from .reading.text import extract
from .reading.words import count_words
from .sending import enqueue_pages, send_pages
from .settings import Settings, get_settings
from .storing import pages as store
from .storing.db import get_engine, get_sessionmaker
from .storing.release import NewPage
from .storing.schedule_runs import start_due
from .urls import same_host_links

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 60  # seconds; Retry-After above this is capped
REDELIVERIES = 2  # times a page may start again after its worker died mid-page
# Past a page's deadline (WORDCRAWL_PAGE_TIMEOUT, by which its fetch has ended), how long
# its text may take to extract and count before the task stops waiting for it.
COUNT_MARGIN_SECONDS = 10


class PageFailed(Exception):
    """Raised once every page a task ran has failed and is stored, so that Celery records
    the task as FAILURE (Flower shows it so)."""


# If PostgreSQL or Redis is briefly away, Celery tries the whole task again later.
@app.task(
    name=CRAWL_PAGES,
    bind=True,
    throws=(PageFailed,),  # a failed page is expected, not a crash: no traceback in the log
    autoretry_for=(DBAPIError, redis.ConnectionError),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=10,
)
def crawl_pages(self: Task, page_ids: list[int]) -> list[dict[str, Any]]:
    """Crawl pages: claim them, fetch each and count its words side by side, and store
    them (the counted ones in one transaction). Each page's row says how it went; the
    result lists them in the order given.

    A page that fails for now (a timeout, a 503) leaves the others and is sent again on
    its own after a while, retried up to WORDCRAWL_FETCH_RETRIES times.
    """
    settings = get_settings()
    engine = get_engine(settings.database_url)
    results = {page_id: _not_run(page_id) for page_id in page_ids}
    pages = []
    for page in store.claim_pages(engine, page_ids, self.request.hostname, self.request.id):
        if (gave_up := _give_up_if_worn_out(engine, page, self.request.retries)) is not None:
            results[page.id] = _failed(page, gave_up)
        else:
            pages.append(page)

    counted = []
    retry_alone: Retry | None = None
    for page, outcome in zip(pages, _count_side_by_side(pages, settings), strict=True):
        if isinstance(outcome, store.CountedPage):
            counted.append((page, outcome))
            continue
        # A page alone in its message keeps its task id when it is tried again: one task
        # per page, which Flower shows as retried (Celery's RETRY state).
        task_id = self.request.id if len(page_ids) == 1 else str(uuid.uuid4())
        results[page.id] = _not_counted(engine, page, outcome, task_id, settings)
        if results[page.id].get("task_id") == self.request.id:
            retry_alone = Retry(exc=outcome.error, when=results[page.id]["in_seconds"])

    stored, to_send = store.finish_pages(engine, counted, settings.job_tasks_in_broker)
    enqueue_pages(to_send)
    for page, result in counted:
        results[page.id] = _done(page, result) if page.id in stored else _overtaken(page)

    if retry_alone is not None:
        raise retry_alone
    ran = [results[page_id] for page_id in page_ids if results[page_id]["status"] != "not run"]
    if ran and all(result["status"] == "failed" for result in ran):
        raise PageFailed("; ".join(result["error"] for result in ran))
    return [results[page_id] for page_id in page_ids]


@dataclass(frozen=True)
class _Failure:
    """What became of a page that could not be counted."""

    error: PageError
    elapsed_ms: int
    final: bool = False  # not to be retried, whatever the error (the page ran out of time)


def _count_side_by_side(
    pages: list[store.ClaimedPage], settings: Settings
) -> list[store.CountedPage | _Failure]:
    """Fetch and count pages, each in a thread of its own; return how each went, in order.

    The wait is bounded here, in every pool: a page's fetch ends by its deadline
    (fetching/fetch.py), and its counting gets COUNT_MARGIN_SECONDS more. Celery's threads pool
    has no time limits of its own; in prefork, the soft time limit ends the wait too. A
    page still unfinished then ends `timeout`, and the pages counted are kept.
    """
    if not pages:
        return []
    started = time.monotonic()
    threads = fetch_threads(max(len(pages), settings.group_size))
    futures = [threads.submit(_count_in_thread, page) for page in pages]
    limit = settings.page_timeout + COUNT_MARGIN_SECONDS
    why = f"the page was not fetched and counted within {limit:g} s"
    try:
        concurrent.futures.wait(futures, timeout=limit)
    except SoftTimeLimitExceeded:
        why = "the task's time limit passed before the page was fetched and counted"
    outcomes = [
        future.result() if future.done() else _Failure(Timeout(why), _ms_since(started), True)
        for future in futures
    ]
    if not all(future.done() for future in futures):
        drop_fetch_threads()  # a busy thread must not hold up the next task's pages
    return outcomes


def _count_in_thread(page: store.ClaimedPage) -> store.CountedPage | _Failure:
    """Fetch a page, extract its text and count its words; its failure is returned."""
    started = time.monotonic()
    try:
        response = worker_fetcher().fetch(page.url)
        document = extract(response)
        counts = count_words(document.text)
        links = same_host_links(
            response.url, document.links, get_settings().max_url_length, document.base_url
        )
    except PageError as error:
        return _Failure(error, _ms_since(started))
    return store.CountedPage(
        response.status, document.title, dict(counts), _ms_since(started), links
    )


def _not_counted(
    engine: Engine,
    page: store.ClaimedPage,
    failure: _Failure,
    retry_task_id: str,
    settings: Settings,
) -> dict[str, Any]:
    """Send a page that failed for now again (as a task of its own, `retry_task_id`,
    after a while), or store it as failed; return its result."""
    error = failure.error
    if error.transient and not failure.final and settings.fetch_retries > 0:
        retried, tries = store.retry_page(
            engine, page, error, retry_task_id, settings.fetch_retries
        )
        if retried:
            delay = _retry_delay(error, tries)
            send_pages([NewPage(page.id, retry_task_id, page.url)], retry_task_id, countdown=delay)
            return {
                "page_id": page.id,
                "url": page.url,
                "status": "retrying",
                "task_id": retry_task_id,
                "in_seconds": round(delay, 3),
                "error": f"{error.code}: {error.message}",
            }
        if tries < settings.fetch_retries:
            return _overtaken(page)  # not retried: another run has the page now
    if not _fail(engine, page, error, failure.elapsed_ms):
        return _overtaken(page)
    return _failed(page, f"{error.code}: {error.message}")


def _give_up_if_worn_out(engine: Engine, page: store.ClaimedPage, outages: int) -> str | None:
    """Fail a page started again and again without ending: its worker died each time (a
    page that crashes or exhausts a worker). Stop there rather than loop forever: return
    why, once the failure is stored; None for a page to crawl.

    Only the starts since the page's last recorded outcome count: every failed attempt,
    retried or not, is recorded (page_attempts), so a page queued again by hand (dead
    letters) keeps its attempts as history and gets a fresh allowance. Nor do the starts
    of this message that ended because PostgreSQL or Redis was away: `outages`, Celery's
    own retries of it (the task's autoretry), say nothing about the page. The history is
    read only for a page started that often in all, so a first start costs no query.
    """
    if page.attempts <= 1 + REDELIVERIES + outages:
        return None
    unfinished = store.starts_without_outcome(engine, page) - outages
    if unfinished <= 1 + REDELIVERIES:
        return None
    error = Timeout(f"the page was started {unfinished - 1} times and never finished")
    _fail(engine, page, error, 0)
    return f"gave up after {unfinished - 1} unfinished attempts"


def _done(page: store.ClaimedPage, counted: store.CountedPage) -> dict[str, Any]:
    return {
        "page_id": page.id,
        "url": page.url,
        "status": "done",
        "word_count": counted.word_count,
        "unique_words": len(counted.counts),
        "links": len(counted.links),
    }


def _failed(page: store.ClaimedPage, why: str) -> dict[str, Any]:
    return {"page_id": page.id, "url": page.url, "status": "failed", "error": why}


def _overtaken(page: store.ClaimedPage) -> dict[str, Any]:
    # Its worker seemed dead (stopped, cut off) for a while, and the page was sent again.
    return {"page_id": page.id, "url": page.url, "status": "not stored: another run has it"}


def _not_run(page_id: int) -> dict[str, Any]:
    # Ended already, its job cancelled, or sent again under another task id.
    return {"page_id": page_id, "status": "not run"}


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _fail(engine: Engine, page: store.ClaimedPage, error: PageError, elapsed_ms: int) -> bool:
    """Store a failed page and send the page of its job that takes its place; False if
    the page was not this run's to end any more."""
    next_pages = store.fail_page(
        engine, page, error, elapsed_ms, get_settings().job_tasks_in_broker
    )
    if next_pages:
        enqueue_pages(next_pages)
    return next_pages is not None


def _retry_delay(error: PageError, retries: int) -> float:
    """Wait as the server asked (Retry-After), else back off exponentially with jitter."""
    asked = getattr(error, "retry_after", None)
    if asked is not None:
        return min(asked, MAX_RETRY_DELAY)
    return get_exponential_backoff_interval(
        factor=1, retries=retries, maximum=MAX_RETRY_DELAY, full_jitter=True
    )


# Upkeep, not the students' work: no task events (Flower does not list it) and no result
# row in celery_taskmeta.
@app.task(name=START_DUE_RUNS, send_events=False, ignore_result=True)
def start_due_runs() -> int:
    """Start the runs whose time has come (one per schedule and period); return how many."""
    settings = get_settings()
    sessions = get_sessionmaker(settings.database_url)
    return len(start_due(sessions, settings.job_tasks_in_broker))
