"""The Celery tasks a worker runs for the pages, and the one function that sends them.

`crawl_page` crawls one page, and `_crawl` reads like the flow: claim the page, fetch it,
extract its text, count its words, store them. Each step is a plain function in its own
module; this file only wires them to Celery (states, retries, time limits) and to the
worker's shared resources. `crawl_pages` crawls several pages sent in one message side by
side, claiming them in one transaction and storing them in one (WORDCRAWL_PAGES_PER_TASK;
README, "Speed").
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from . import store
from .broker import broker_task_ids
from .celery_app import app
from .db import get_engine, get_sessionmaker
from .errors import PageError, Timeout
from .fetch import Fetcher
from .politeness import HostLimiter
from .reconcile import lost_pages, starved_jobs
from .robots import RobotsRules
from .settings import get_settings
from .text import extract
from .urls import same_host_links
from .words import count_words

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 60  # seconds; Retry-After above this is capped
REDELIVERIES = 2  # times a page may start again after its worker died mid-page
RECONCILE_LOCK = "wordcrawl:reconcile-lock"
REDIS_CONNECTIONS = 32  # per worker process, for wordcrawl's own commands (broker_redis)
REDIS_WAIT_SECONDS = 30  # the longest a thread waits for one of them


class PageFailed(Exception):
    """Raised after a failed page is stored, so Celery records the task as FAILURE."""


@lru_cache(maxsize=1)
def broker_redis() -> redis.Redis:
    """Return this process's client of the broker's Redis (robots cache, limits, locks).

    Its threads (a threads pool's, and the threads fetching a group's pages) share its
    connections, each held for one command: when all are in use, a thread waits for one.
    redis-py's default pool would raise MaxConnectionsError past 100 threads at once.
    """
    pool = redis.BlockingConnectionPool.from_url(
        get_settings().broker_url,
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_WAIT_SECONDS,  # then ConnectionError, and the task is tried again
    )
    return redis.Redis(connection_pool=pool)


@lru_cache(maxsize=1)
def worker_fetcher() -> Fetcher:
    """Return this worker process's fetcher (its sessions, robots cache and host limits)."""
    settings = get_settings()
    robots = RobotsRules(broker_redis(), settings.user_agent, settings.robots_cache_seconds)
    limiter = HostLimiter(
        broker_redis(),
        settings.per_host_concurrency,
        settings.per_host_delay_ms,
        # A slot outlives the longest a page can take, so a killed worker's slot expires.
        slot_seconds=settings.task_time_limit,
    )
    return Fetcher(settings, robots, limiter)


class _TryAgain(Exception):
    """A page failed for now (a timeout, a 503...) and may be tried again later."""

    def __init__(self, page: store.ClaimedPage, error: PageError) -> None:
        super().__init__(error)
        self.page = page
        self.error = error


# Both page tasks: if PostgreSQL or Redis is briefly away, try the whole task again later.
PAGE_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "autoretry_for": (DBAPIError, redis.ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
}


# A failed page is expected, not a crash: FAILURE state, but no traceback in the log.
@app.task(throws=(PageFailed,), **PAGE_TASK_OPTIONS)
def crawl_page(self: Task, page_id: int) -> dict[str, Any]:
    """Fetch one page, count its words and store them; the page's row says how it went."""
    engine = get_engine(get_settings().database_url)
    try:
        return _crawl(self, engine, page_id, self.request.retries)
    except _TryAgain as again:
        store.record_retry(engine, again.page, again.error)  # its history sees it
        delay = _retry_delay(again.error, self.request.retries)
        raise self.retry(countdown=delay, exc=again.error) from again


@app.task(**PAGE_TASK_OPTIONS)
def crawl_pages(self: Task, page_ids: list[int]) -> list[dict[str, Any]]:
    """Crawl several pages at once: claimed together, fetched side by side, and the
    counted ones stored together, each page's row as crawl_page would leave it.

    Sent instead of crawl_page when WORDCRAWL_PAGES_PER_TASK is above 1: the pages share
    one message, one acknowledgement, one set of Celery states, and two transactions
    (README, "Speed"). A page that fails for now leaves the group and becomes a
    crawl_page task of its own, retried as any other.
    """
    settings = get_settings()
    engine = get_engine(settings.database_url)
    results = {page_id: _not_run(page_id) for page_id in page_ids}
    pages = []
    for page in store.claim_pages(engine, page_ids, self.request.hostname, self.request.id):
        if (gave_up := _give_up_if_worn_out(engine, page)) is not None:
            results[page.id] = _failed(page, str(gave_up))
        else:
            pages.append(page)
    # Each page is fetched and counted in a thread of its own (group_threads), so the
    # group takes about as long as its slowest page, within one page's time limits. Should
    # the soft time limit interrupt the wait, its pages stay `running` under this task's
    # id, and once it has ended the reconciler sends them again (reconcile.py).
    threads = group_threads(max(len(pages), settings.pages_per_task))
    outcomes = threads.map(_count_in_thread, pages)
    counted = []
    for page, outcome in zip(pages, outcomes, strict=True):
        if isinstance(outcome, store.CountedPage):
            counted.append((page, outcome))
            results[page.id] = _done(page, outcome)
        elif outcome.error.transient and settings.fetch_retries > 0:
            results[page.id] = _send_alone(engine, page, outcome.error)
        else:
            _fail(engine, page, outcome.error, outcome.elapsed_ms)
            results[page.id] = _failed(page, f"{outcome.error.code}: {outcome.error.message}")
    enqueue_pages(store.finish_pages(engine, counted, settings.job_pages_in_broker))
    return [results[page_id] for page_id in page_ids]


def _crawl(task: Task, engine: Engine, page_id: int, retries: int) -> dict[str, Any]:
    """Claim, fetch, count and store one page; return what Celery keeps as its result.

    Raises PageFailed once a failed page is stored, and _TryAgain for a failure that may
    pass while `retries` (the tries so far) are fewer than WORDCRAWL_FETCH_RETRIES.
    """
    claimed = store.claim_pages(engine, [page_id], task.request.hostname, task.request.id)
    if not claimed:
        return _not_run(page_id)
    page = claimed[0]
    if (gave_up := _give_up_if_worn_out(engine, page)) is not None:
        raise gave_up
    started = time.monotonic()
    try:
        # Celery's STARTED state (task_track_started) says the page is being crawled, and
        # SUCCESS or FAILURE how it ended. No custom state in between: each state is one
        # more PostgreSQL write per page, and nothing reads it (README, "Speed").
        counted = _count(page, started)
    except SoftTimeLimitExceeded:
        error: PageError = Timeout("the page took longer than the task's time limit")
    except PageError as err:
        error = err
    else:
        enqueue_pages(
            store.finish_pages(engine, [(page, counted)], get_settings().job_pages_in_broker)
        )
        return _done(page, counted)

    if error.transient and retries < get_settings().fetch_retries:
        raise _TryAgain(page, error)
    _fail(engine, page, error, _ms_since(started))
    raise PageFailed(f"{error.code}: {error.message}")


def _count(page: store.ClaimedPage, started: float) -> store.CountedPage:
    """Fetch a page, extract its text and count its words; raise PageError if it cannot be."""
    response = worker_fetcher().fetch(page.url)
    document = extract(response)
    counts = count_words(document.text)
    links = same_host_links(
        response.url, document.links, get_settings().max_url_length, document.base_url
    )
    return store.CountedPage(
        response.status, document.title, dict(counts), _ms_since(started), links
    )


@dataclass(frozen=True)
class _Failure:
    """What became of a page of a group that could not be counted."""

    error: PageError
    elapsed_ms: int


def _count_in_thread(page: store.ClaimedPage) -> store.CountedPage | _Failure:
    """_count, for a page of a group: its failure is returned, not raised."""
    started = time.monotonic()
    try:
        return _count(page, started)
    except PageError as error:
        return _Failure(error, _ms_since(started))


_group_local = threading.local()


def group_threads(size: int) -> ThreadPoolExecutor:
    """Return this task thread's threads that fetch a group's pages side by side, at least
    `size` of them (WORDCRAWL_PAGES_PER_TASK): one set for each thread that runs tasks
    (one per prefork process, one per thread of the threads pool), started when first
    needed and kept, with their open connections to the sites (fetch.py keeps one requests
    session per thread)."""
    threads = getattr(_group_local, "threads", None)
    if threads is None or _group_local.size < size:
        if threads is not None:
            threads.shutdown(wait=False)  # a larger group than any before (settings changed)
        threads = ThreadPoolExecutor(size, thread_name_prefix="fetch")
        _group_local.threads, _group_local.size = threads, size
    return threads


def _give_up_if_worn_out(engine: Engine, page: store.ClaimedPage) -> PageFailed | None:
    """Fail a page started again and again without ending: its worker died each time (a
    page that crashes or exhausts a worker). Stop there rather than loop forever: return
    the PageFailed to report, once the failure is stored; None for a page to crawl.

    Only the starts since the page's last recorded outcome count: every failed attempt,
    retried or not, is recorded (page_attempts), so a page queued again by hand (dead
    letters) keeps its attempts as history and gets a fresh allowance. The history is
    read only for a page started that often in all, so a first start costs no query.
    """
    if page.attempts <= 1 + REDELIVERIES:
        return None
    unfinished = store.starts_without_outcome(engine, page)
    if unfinished <= 1 + REDELIVERIES:
        return None
    _fail(
        engine, page, Timeout(f"the page was started {unfinished - 1} times and never finished"), 0
    )
    return PageFailed(f"gave up after {unfinished - 1} unfinished attempts")


def _send_alone(engine: Engine, page: store.ClaimedPage, error: PageError) -> dict[str, Any]:
    """Send a page of a group that failed for now as a crawl_page task of its own, to be
    tried again after a while as any other (its first try was in the group)."""
    task_id = str(uuid.uuid4())
    store.record_retry(engine, page, error, new_task_id=task_id)
    crawl_page.apply_async(
        args=[page.id], task_id=task_id, countdown=_retry_delay(error, 0), retries=1
    )
    return {"page_id": page.id, "url": page.url, "status": "retrying", "task_id": task_id}


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


def _not_run(page_id: int) -> dict[str, Any]:
    return {"page_id": page_id, "status": "not run: ended already or job cancelled"}


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _fail(engine: Engine, page: store.ClaimedPage, error: PageError, elapsed_ms: int) -> None:
    """Store a failed page and send the page of its job that takes its place."""
    next_pages = store.fail_page(
        engine, page, error, elapsed_ms, get_settings().job_pages_in_broker
    )
    if next_pages:
        enqueue_pages(next_pages)


def _retry_delay(error: PageError, retries: int) -> float:
    """Wait as the server asked (Retry-After), else back off exponentially with jitter."""
    asked = getattr(error, "retry_after", None)
    if asked is not None:
        return min(asked, MAX_RETRY_DELAY)
    return get_exponential_backoff_interval(
        factor=1, retries=retries, maximum=MAX_RETRY_DELAY, full_jitter=True
    )


def enqueue_pages(pages: Iterable[tuple[int, str]]) -> None:
    """Send (page id, task id) pairs over one broker connection: one message per task id,
    crawl_page for a page alone, crawl_pages for pages sharing one (store.task_ids_for)."""
    groups: dict[str, list[int]] = {}
    for page_id, task_id in pages:
        groups.setdefault(task_id, []).append(page_id)
    with app.producer_or_acquire() as producer:
        for task_id, page_ids in groups.items():
            if len(page_ids) == 1:
                crawl_page.apply_async(args=page_ids, task_id=task_id, producer=producer)
                continue
            # The time limits of one page hold for the group: its pages are crawled side
            # by side (crawl_pages).
            crawl_pages.apply_async(args=[page_ids], task_id=task_id, producer=producer)


@app.task(ignore_result=True)
def reconcile_pages() -> int:
    """Send again the pages whose messages the broker lost (see reconcile.py)."""
    # One run at a time across all workers; the lock expires before the next period.
    settings = get_settings()
    period = settings.reconcile_seconds
    if not broker_redis().set(RECONCILE_LOCK, "1", nx=True, px=max(1, period * 1000 - 500)):
        return 0
    held = broker_task_ids(app, list(app.amqp.queues))
    sessions = get_sessionmaker(settings.database_url)
    pages = lost_pages(sessions, held, grace_seconds=period)
    if pages:
        log.warning("sending %d pages again whose task messages were lost", len(pages))
        enqueue_pages(pages)
    released = starved_jobs(sessions, settings.job_pages_in_broker)
    if released:
        log.info("released %d waiting pages of jobs with room in the broker", len(released))
        enqueue_pages(released)
    return len(pages) + len(released)
