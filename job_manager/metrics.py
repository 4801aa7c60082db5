"""`/metrics`: wordcrawl's numbers in Prometheus's text format, read at each scrape.

The job record is the truth, so the numbers come from PostgreSQL (and the queues from
Redis) when Prometheus asks, not from counters kept in one manager process: any manager
process gives the same answer, and a restart loses nothing. The histograms are built from
the pages' rows too (prometheus_client's custom collector API), so their counts are the
pages that ended. `wordcrawl prune` deletes old rows, which Prometheus sees as a counter
reset. A scrape reads the pages table once, and its answer is reused for a few seconds
by the process that made it (WORDCRAWL_METRICS_CACHE_SECONDS); pruning keeps that table,
and the scrape, small. Each client may scrape SCRAPES_PER_MINUTE times a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import redis
from flask import Blueprint, Response, current_app
from kombu.exceptions import OperationalError as KombuOperationalError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from job_tasks import app as celery_app
from job_tasks.celeryconfig import QUEUES
from job_tasks.storing.models import JOB_STATUSES, PAGE_STATUSES, Job, Page
from job_tasks.upkeep.broker import queue_length

from .extensions import census, limiter, sessions, settings
from .shared_answers import SharedAnswers

# Upper bounds (seconds) of the histograms' buckets: a demo page takes about 0.1 s, a slow
# site seconds, and no task runs past its time limit (120 s by default).
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ENDED = ("done", "failed")  # the pages a worker ran to an end (skipped ones never ran)
RATE_WINDOW = timedelta(minutes=1)  # wordcrawl_pages_per_second averages over this
# Scrapes per client per minute: Prometheus asks every 15 s; a loop asking faster is cut off.
SCRAPES_PER_MINUTE = 60

bp = Blueprint("metrics", __name__)


def duration_histogram(
    session: Session, name: str, doc: str, seconds: ColumnElement[float]
) -> HistogramMetricFamily:
    """Count the ended pages into cumulative buckets of `seconds`, by status, in one query."""
    rows = session.execute(
        select(
            Page.status,
            *(func.count().filter(seconds <= bound) for bound in DURATION_BUCKETS),
            func.count(),
            func.coalesce(func.sum(seconds), 0.0),
        )
        .where(Page.status.in_(ENDED), seconds.is_not(None))
        .group_by(Page.status)
    ).all()
    by_status = {row[0]: row[1:] for row in rows}
    no_pages = (0,) * (len(DURATION_BUCKETS) + 2)  # every bucket, the count and the sum
    histogram = HistogramMetricFamily(name, doc, labels=["status"])
    for status in ENDED:
        *cumulative, total, total_seconds = by_status.get(status, no_pages)
        buckets = [(str(bound), n) for bound, n in zip(DURATION_BUCKETS, cumulative, strict=True)]
        histogram.add_metric([status], [*buckets, ("+Inf", total)], float(total_seconds))
    return histogram


class WordcrawlCollector:
    """Build every wordcrawl_ metric from the tables and the broker at scrape time."""

    def collect(self) -> Iterator[Metric]:
        yield from self.from_tables()
        yield from self.from_broker()

    def from_tables(self) -> Iterator[Metric]:
        """Jobs and pages by status, pages per second, and the two duration histograms."""
        with sessions()() as session:
            jobs = dict(
                session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            )
            pages = dict(
                session.execute(select(Page.status, func.count()).group_by(Page.status)).all()
            )
            recent = session.execute(
                select(func.count()).where(
                    Page.status.in_(ENDED), Page.finished_at > func.now() - RATE_WINDOW
                )
            ).scalar_one()
            # elapsed_ms is the worker's own clock around fetching and counting a page
            # (job_tasks/tasks.py); started_at to finished_at is the whole task, from
            # claiming the page to its counts stored, by the database's clock.
            fetch = duration_histogram(
                session,
                "wordcrawl_fetch_duration_seconds",
                "Time a worker spent fetching a page and counting its words (pages.elapsed_ms).",
                Page.elapsed_ms / 1000.0,
            )
            task = duration_histogram(
                session,
                "wordcrawl_task_duration_seconds",
                "Time from a worker claiming a page to its result stored (pages.started_at "
                "to finished_at).",
                func.extract("epoch", Page.finished_at - Page.started_at),
            )

        job_gauge = GaugeMetricFamily("wordcrawl_jobs", "Jobs by status.", labels=["status"])
        for status in JOB_STATUSES:
            job_gauge.add_metric([status], jobs.get(status, 0))
        yield job_gauge

        page_gauge = GaugeMetricFamily("wordcrawl_pages", "Pages by status.", labels=["status"])
        for status in PAGE_STATUSES:
            page_gauge.add_metric([status], pages.get(status, 0))
        yield page_gauge

        ended = CounterMetricFamily(
            "wordcrawl_pages_ended", "Pages that ended done or failed.", labels=["status"]
        )
        for status in ENDED:
            ended.add_metric([status], pages.get(status, 0))
        yield ended

        yield GaugeMetricFamily(
            "wordcrawl_pages_per_second",
            "Pages ended (done or failed) per second over the last minute.",
            value=recent / RATE_WINDOW.total_seconds(),
        )
        yield fetch
        yield task

    def from_broker(self) -> Iterator[Metric]:
        """Task messages waiting in each queue, and the workers alive in the census."""
        queued = GaugeMetricFamily(
            "wordcrawl_queue_length",
            "Task messages waiting in Redis, not yet taken by a worker.",
            labels=["queue"],
        )
        try:
            for queue in QUEUES:
                queued.add_metric([queue], queue_length(celery_app, [queue]))
            alive = census().alive()
        except (redis.RedisError, OSError, KombuOperationalError):
            return  # the broker is away: these are left out, the tables' numbers still count
        yield queued
        yield GaugeMetricFamily(
            "wordcrawl_workers_online",
            "Workers whose heartbeat reached the census within WORDCRAWL_RECONCILE_SECONDS.",
            value=len(alive),
        )


registry = CollectorRegistry(auto_describe=False)
registry.register(WordcrawlCollector())


@bp.get("/metrics")
@limiter.limit(f"{SCRAPES_PER_MINUTE}/minute")
def metrics() -> Response:
    """Answer Prometheus's scrape with every wordcrawl_ metric (at most a few seconds old)."""
    answers: SharedAnswers = current_app.extensions["wordcrawl_answers"]
    seconds = settings().metrics_cache_seconds
    text = answers.get("metrics", seconds, lambda: generate_latest(registry))
    # content_type, not mimetype: Flask would add a second charset to it, and Prometheus 3
    # refuses a Content-Type with a parameter twice.
    return Response(text, content_type=CONTENT_TYPE_LATEST)
