"""The deployment's upkeep, run by the workers themselves: once a period, by one of them.

Every WORDCRAWL_RECONCILE_SECONDS, one worker sends again the pages nobody is crawling any
more (reconcile.py): those of workers the census (census.py) no longer counts alive, then
those whose task messages were lost; and it releases the waiting pages of jobs that have
room in the broker. It runs in a thread of the worker's own (beside its heartbeat),
straight against PostgreSQL and Redis: no task message, so Flower's task list and
`celery_taskmeta` hold the crawl's tasks, not this.

Periods are counted on Redis's clock, the same for every worker; in each, the first worker
to claim the period's key runs the upkeep, and the others find it taken. Workers wake at
the start of each period, so a dead worker's pages are sent again within two periods of
its death: one for the census to forget it, one for the next upkeep to notice.

Only workers that take the `housekeeping` queue do upkeep (`wordcrawl worker --queues`).
Every worker, as it starts, takes back the pages its previous run under the same name
left running (reconcile.pages_left_by): the census cannot tell that run from this one.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache

import redis
from celery import Celery, bootsteps
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from ..celeryconfig import HOUSEKEEPING_QUEUE
from ..sending import enqueue_pages
from ..settings import Settings, get_settings, sqlalchemy_url
from .broker import broker_task_ids, task_ids_taken_before
from .census import Census
from .heartbeat import census_for
from .reconcile import lost_pages, pages_left_by, pages_of_dead_workers, starved_jobs

log = logging.getLogger(__name__)

PERIOD_KEY = "wordcrawl:upkeep:"  # + the period's number: the worker that ran it
WAKE_LATE_SECONDS = 0.05  # wake this long after a period starts, never just before it

# KEYS[1]: the period key's prefix. ARGV: node name, period (s). Claims the current period
# for this node if no worker has yet (the key expires after two periods); returns
# [1 if claimed else 0, the period's number, seconds until the next period starts].
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local period = tonumber(ARGV[2])
local number = math.floor(now / period)
local ttl_ms = math.ceil(period * 2000)
local claimed = redis.call('SET', KEYS[1] .. number, ARGV[1], 'NX', 'PX', ttl_ms)
return {claimed and 1 or 0, string.format('%d', number), tostring((number + 1) * period - now)}
"""


@lru_cache(maxsize=1)
def upkeep_sessions(database_url: str) -> sessionmaker[Session]:
    """Return the upkeep's sessions: each opens a connection to PostgreSQL and closes it.

    Once a period is too seldom to keep a connection open, and a worker's main process
    that keeps none hands none down to the pool processes it forks."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    return sessionmaker(engine, expire_on_commit=False)


def run_upkeep(app: Celery, settings: Settings, census: Census, node: str) -> dict[str, int]:
    """Send again the pages nobody is crawling any more and release the waiting pages of
    jobs with room; return how many of each."""
    sessions = upkeep_sessions(settings.database_url)
    grace = settings.reconcile_seconds
    alive: set[str] | None = set(census.alive())
    # This worker reports to the census too: if it is missing, the census cannot be
    # trusted now (Redis lost it, or this worker could not report), so judge nobody by it.
    if node not in alive:
        alive = None
    taken = task_ids_taken_before(app, grace)
    dead = pages_of_dead_workers(sessions, alive, taken, grace)
    if dead:
        log.warning("sending again %d pages whose workers died", len(dead))
        enqueue_pages(dead)
    lost = lost_pages(sessions, broker_task_ids(app, list(app.amqp.queues)), grace)
    if lost:
        log.warning("sending again %d pages whose task messages were lost", len(lost))
        enqueue_pages(lost)
    released = starved_jobs(sessions, settings.job_tasks_in_broker)
    if released:
        log.info("released %d waiting pages of jobs with room in the broker", len(released))
        enqueue_pages(released)
    return {"dead": len(dead), "lost": len(lost), "released": len(released)}


class Upkeep(bootsteps.StartStopStep):
    """A worker step: take back this worker's leftover pages as it starts, then run the
    deployment's upkeep from a thread, in the periods this worker claims first."""

    def __init__(self, worker, **kwargs) -> None:
        self.settings = get_settings()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.node = ""

    def start(self, worker) -> None:
        # A worker step starts before the worker takes any task: the pages running under
        # this name now are its previous run's.
        self.node = worker.hostname
        try:
            left = pages_left_by(upkeep_sessions(self.settings.database_url), self.node)
            if left:
                log.warning("sending again %d pages this worker's last run left", len(left))
                enqueue_pages(left)
        except (SQLAlchemyError, redis.RedisError, OSError):
            log.warning("could not take back this worker's last pages", exc_info=True)
        if HOUSEKEEPING_QUEUE in worker.app.amqp.queues.consume_from:
            self.thread = threading.Thread(
                target=self._run, args=(worker.app,), name="upkeep", daemon=True
            )
            self.thread.start()

    def stop(self, worker) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _run(self, app: Celery) -> None:
        census = census_for(self.settings)
        claim = census.client.register_script(_CLAIM)
        period = self.settings.reconcile_seconds
        while not self.stopped.is_set():
            wait = period
            try:
                claimed, number, wait = claim(keys=[PERIOD_KEY], args=[self.node, period])
                if claimed:
                    done = run_upkeep(app, self.settings, census, self.node)
                    log.info("upkeep of period %s: %s", int(number), done)
            except (SQLAlchemyError, redis.RedisError, OSError):
                # PostgreSQL or Redis is away: the next period tries again.
                log.warning("upkeep failed", exc_info=True)
            self.stopped.wait(float(wait) + WAKE_LATE_SECONDS)
