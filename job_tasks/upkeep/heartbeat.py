"""A worker's heartbeat: report to the census (census.py) every few seconds that it lives.

A worker step (a Celery bootstep) starts a thread of its own in the worker's main process
when the worker starts, and takes the worker out of the census when it stops on purpose,
once its last tasks have ended.
The thread only talks to Redis, never to the worker's event loop, so a busy worker (a
long page, a full pool) still reports on time; a worker killed or paused stops reporting,
and the census forgets it after WORDCRAWL_RECONCILE_SECONDS.

Each report also says how many pages the worker can run at once and how much CPU its
processes used over the last seconds (cpu.py): the dashboard's figures of each worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import psutil
import redis
from celery import bootsteps
from celery.concurrency import get_implementation
from celery.signals import worker_shutdown

from ..settings import Settings, get_settings
from .census import Census
from .cpu import CpuMeter

log = logging.getLogger(__name__)


def census_for(settings: Settings) -> Census:
    """Return the census of the deployment these settings name (its broker's Redis)."""
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
    return Census(client, ttl_seconds=settings.reconcile_seconds)


def heartbeat_seconds(settings: Settings) -> float:
    """How often a worker reports: several times within the census's memory."""
    return min(2.0, settings.reconcile_seconds / 4)


class Heartbeat(bootsteps.StartStopStep):
    """A worker step: report this worker to the census until it stops."""

    def __init__(self, worker, **kwargs) -> None:
        self.settings = get_settings()
        self.census = census_for(self.settings)
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.node = ""
        self.facts: dict[str, Any] = {}
        self.cpu: CpuMeter | None = None

    def start(self, worker) -> None:
        self.node = worker.hostname
        self.facts = {
            "pid": os.getpid(),
            "pool": _pool_name(worker),
            "concurrency": worker.concurrency,
            "page_slots": page_slots(worker.concurrency, self.settings),
            "queues": sorted(worker.app.amqp.queues.consume_from),
            "started_at": time.time(),
        }
        self.cpu = CpuMeter()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self.thread.start()
        # Leave the census once the worker's tasks have ended (worker_shutdown comes after
        # its pool has stopped), not when this step stops: steps stop in no fixed order,
        # and a worker finishing its pages on a warm shutdown is alive until it is done,
        # or the upkeep would send those pages again meanwhile (recovery.py).
        worker_shutdown.connect(self._leave, sender=worker, weak=False)

    def _leave(self, **_: object) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        try:
            self.census.forget(self.node)
        except redis.RedisError:
            log.warning("could not take %s out of the census", self.node)

    def _run(self) -> None:
        period = heartbeat_seconds(self.settings)
        while not self.stopped.is_set():
            try:
                self.census.report(self.node, {**self.facts, **self._cpu()})
            except redis.RedisError:  # the broker is away: the next beat tries again
                log.warning("could not report to the census", exc_info=True)
            self.stopped.wait(period)

    def _cpu(self) -> dict[str, Any]:
        try:
            return self.cpu.read() if self.cpu else {}
        except psutil.Error:  # the report goes without its CPU figures, not without the worker
            log.warning("could not read the worker's CPU time", exc_info=True)
            return {}


def page_slots(concurrency: int, settings: Settings) -> int:
    """Return how many pages a worker can run at once: as many tasks as its concurrency,
    each carrying up to WORDCRAWL_MAX_PAGES_PER_TASK pages (Settings.group_size)."""
    return concurrency * settings.group_size


def _pool_name(worker) -> str:
    """Name a worker's pool as `--pool` does: prefork, threads, solo."""
    module = get_implementation(worker.pool_cls).__module__.rsplit(".", 1)[-1]
    return "threads" if module == "thread" else module
