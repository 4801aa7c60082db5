"""`/metrics`: wordcrawl's numbers in Prometheus's text format, read at each scrape.

The job record is the truth, so the numbers come from PostgreSQL (and the queue length
from Redis) when Prometheus asks, not from counters kept in one manager process: any
manager process gives the same answer, and a restart loses nothing. Prometheus computes
pages per second itself: `rate(wordcrawl_pages_ended_total[1m])`.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import func, select

from job_tasks import app as celery_app
from job_tasks.broker import queue_length
from job_tasks.models import JOB_STATUSES, PAGE_STATUSES, Job, Page

from .extensions import limiter, sessions

# Upper bounds (seconds) of the page-duration histogram's buckets.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

bp = Blueprint("metrics", __name__)


class WordcrawlCollector:
    """Build every wordcrawl_ metric from the tables and the broker at scrape time."""

    def collect(self) -> Iterator[Metric]:
        with sessions()() as session:
            jobs = dict(
                session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            )
            pages = dict(
                session.execute(select(Page.status, func.count()).group_by(Page.status)).all()
            )
            seconds = Page.elapsed_ms / 1000.0
            bucket_counts = session.execute(
                select(
                    *(func.count().filter(seconds <= bound) for bound in DURATION_BUCKETS),
                    func.count(),
                    func.coalesce(func.sum(seconds), 0.0),
                ).where(Page.status.in_(("done", "failed")), Page.elapsed_ms.is_not(None))
            ).one()

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
        for status in ("done", "failed"):
            ended.add_metric([status], pages.get(status, 0))
        yield ended

        *cumulative, total, total_seconds = bucket_counts
        buckets = [(str(bound), n) for bound, n in zip(DURATION_BUCKETS, cumulative, strict=True)]
        histogram = HistogramMetricFamily(
            "wordcrawl_page_duration_seconds",
            "Time a worker spent on a page: fetch, count and store.",
        )
        histogram.add_metric([], [*buckets, ("+Inf", total)], float(total_seconds))
        yield histogram

        queued = GaugeMetricFamily(
            "wordcrawl_queue_length", "Task messages waiting in Redis.", labels=["queue"]
        )
        online = GaugeMetricFamily("wordcrawl_workers_online", "Workers answering a ping.")
        try:
            for queue in celery_app.amqp.queues:
                queued.add_metric([queue], queue_length(celery_app, [queue]))
            online.add_metric([], len(celery_app.control.ping(timeout=0.5) or []))
        except Exception:  # the broker is away: say so by leaving these out
            return
        yield queued
        yield online


registry = CollectorRegistry(auto_describe=False)
registry.register(WordcrawlCollector())


@bp.get("/metrics")
@limiter.exempt
def metrics() -> Response:
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
