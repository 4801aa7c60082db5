"""What a worker process keeps between pages: its Redis client, its fetcher, its fetch threads.

Each is made on first use in the process that uses it (a prefork pool process, or the
worker itself with the threads pool), never at import time, and then kept: connections
to Redis and to the sites crawled outlive one page. The task (tasks.py) only asks for them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import redis

from ..settings import get_settings
from .fetch import Fetcher
from .politeness import HostLimiter
from .robots import RobotsRules

REDIS_CONNECTIONS = 32  # per worker process, for wordcrawl's own commands (broker_redis)
REDIS_WAIT_SECONDS = 30  # the longest a thread waits for one of them


@lru_cache(maxsize=1)
def broker_redis() -> redis.Redis:
    """Return this process's client of the broker's Redis (robots cache, limits, locks).

    Its threads (a threads pool's, and the threads fetching a task's pages) share its
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


_fetch_local = threading.local()


def fetch_threads(size: int) -> ThreadPoolExecutor:
    """Return the threads that fetch this task thread's pages side by side, at least `size`
    of them (Settings.group_size): one set for each thread that runs tasks (one per
    prefork process, one per thread of the threads pool), started when first needed and
    kept, with their open connections to the sites (fetch.py keeps one requests session
    per thread)."""
    threads = getattr(_fetch_local, "threads", None)
    if threads is None or _fetch_local.size < size:
        if threads is not None:
            threads.shutdown(wait=False)  # a larger group than any before (settings changed)
        threads = ThreadPoolExecutor(size, thread_name_prefix="fetch")
        _fetch_local.threads, _fetch_local.size = threads, size
    return threads


def drop_fetch_threads() -> None:
    """Leave this task thread's fetch threads to end on their own, and start new ones for
    the next task: one of them overran the page's deadline and may still be busy."""
    threads = getattr(_fetch_local, "threads", None)
    if threads is not None:
        threads.shutdown(wait=False, cancel_futures=True)
        _fetch_local.threads = None
