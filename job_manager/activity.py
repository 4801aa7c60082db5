"""What the workers are doing now: the numbers of GET /api/activity and of the dashboard.

From PostgreSQL (the pages each worker claimed and ended): pages ended per bucket of
time, each worker's pages running now and pages ended lately, how long pages waited in
the broker's queue before a worker took them, and the newest pages. From the census
(each worker's heartbeat): who is online, how many pages each can run at once, and the
CPU its processes use. bounds.py reads them all to say what limits the speed.

Every open dashboard asks for this every 2 seconds, so each query reads only recent or
running pages, through an index (pages_finished_at, and pages_in_broker for the pages
running now), whatever the number of pages the database holds.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, Select, cast, func, literal_column, select, union_all
from sqlalchemy.orm import Session

from job_tasks.storing.models import Page

from .queries import iso

RECENT_SECONDS = 30  # a worker's pages per second, and the queue's wait, over this window

ENDED = Page.status.in_(("done", "failed"))
# The pages running now. task_id IS NOT NULL always holds for them (a page is claimed by
# its task); saying it lets PostgreSQL read the small partial index pages_in_broker.
RUNNING = (Page.status == "running") & Page.task_id.is_not(None)


def page_activity(session: Session, minutes: int, bucket_seconds: int) -> dict[str, Any]:
    """Return what the pages say of the last minutes: the dashboard's database numbers."""
    since = func.now() - timedelta(minutes=minutes)
    recent = func.now() - timedelta(seconds=RECENT_SECONDS)
    epoch = func.extract("epoch", Page.finished_at)
    bucket = (func.floor(epoch / bucket_seconds) * bucket_seconds).label("bucket")
    curve = session.execute(
        select(bucket, func.count()).where(Page.finished_at > since, ENDED).group_by(bucket)
    ).all()
    ended = session.execute(
        select(Page.worker, func.count(), func.count().filter(Page.finished_at > recent))
        .where(Page.finished_at > since, ENDED, Page.worker.is_not(None))
        .group_by(Page.worker)
    ).all()
    running = session.execute(
        select(Page.worker, func.count())
        .where(RUNNING, Page.worker.is_not(None))
        .group_by(Page.worker)
    ).all()
    workers: dict[str, dict[str, Any]] = defaultdict(_no_pages)
    for name, done, lately in ended:
        workers[name].update(done=done, pages_per_second=round(lately / RECENT_SECONDS, 2))
    for name, count in running:
        workers[name]["running"] = count
    return {
        "bucket_seconds": bucket_seconds,
        "pages_ended": [
            {"at": datetime.fromtimestamp(float(at), UTC).isoformat(), "pages": n}
            for at, n in sorted(curve)
        ],
        "workers": dict(workers),
        "queue_wait": queue_wait(session),
        "busiest_site": busiest_site(session),
        "newest_pages": newest_pages(session, since),
    }


def queue_wait(session: Session) -> dict[str, Any]:
    """Return how long pages waited in the broker before a worker took them (queued_at to
    started_at): the pages running now and those ended in the last RECENT_SECONDS."""
    waited = func.greatest(func.extract("epoch", Page.started_at - Page.queued_at), 0)
    started = Page.started_at.is_not(None)
    recent = func.now() - timedelta(seconds=RECENT_SECONDS)
    pages = union_all(
        select(waited.label("s")).where(Page.finished_at > recent, ENDED, started),
        select(waited.label("s")).where(RUNNING, started),
    ).subquery()
    s = cast(pages.c.s, Float)
    count, p50, p95 = session.execute(
        select(
            func.count(),
            func.percentile_cont(0.5).within_group(s),
            func.percentile_cont(0.95).within_group(s),
        ).select_from(pages)
    ).one()
    return {
        "pages": count,
        "p50_seconds": _seconds(p50),
        "p95_seconds": _seconds(p95),
        "window_seconds": RECENT_SECONDS,
    }


def busiest_site(session: Session) -> dict[str, Any] | None:
    """Return the site (host and port) with the most pages running now, and how many."""
    # http://host:port/path -> host:port, as the politeness limit counts requests per site.
    site = func.lower(func.split_part(func.split_part(Page.url, "://", 2), "/", 1)).label("site")
    row = session.execute(
        select(site, func.count().label("n"))
        .where(RUNNING)
        .group_by(site)
        .order_by(literal_column("n").desc(), site)
        .limit(1)
    ).first()
    return {"site": row.site, "running": row.n} if row else None


def newest_pages(session: Session, since: Any) -> list[dict[str, Any]]:
    """Return the 20 pages ended last, with their worker."""
    query: Select = (
        select(Page.job_id, Page.url, Page.status, Page.worker, Page.elapsed_ms, Page.finished_at)
        .where(Page.finished_at > since, ENDED)
        .order_by(Page.finished_at.desc(), Page.id.desc())
        .limit(20)
    )
    return [
        {
            "job_id": str(row.job_id),
            "url": row.url,
            "status": row.status,
            "worker": row.worker,
            "elapsed_ms": row.elapsed_ms,
            "finished_at": iso(row.finished_at),
        }
        for row in session.execute(query)
    ]


def worker_rows(
    from_pages: dict[str, dict[str, Any]], reports: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Join each worker's pages with its census report: one row per worker, by name."""
    rows = []
    for name in sorted(set(reports) | set(from_pages)):
        report = reports.get(name, {})
        row: dict[str, Any] = {"name": name, "online": name in reports, **_no_pages()}
        row.update(from_pages.get(name, {}))
        cpus, cpu = report.get("cpus"), report.get("cpu_percent")
        row.update(
            host=report.get("host"),
            cpus=cpus,
            page_slots=report.get("page_slots"),
            cpu_percent=cpu,
            cpu_machine_percent=round(cpu / cpus, 1) if cpu is not None and cpus else None,
        )
        rows.append(row)
    return rows


def machines(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Group the online workers by the machine they run on: its CPUs and how busy they are."""
    by_host: dict[str, dict[str, Any]] = {}
    for name, report in sorted(reports.items()):
        if "cpu_percent" not in report or not report.get("cpus"):
            continue  # a worker of an older version, or one whose CPU could not be read
        host = by_host.setdefault(
            report.get("host") or name,
            {"cpus": report["cpus"], "workers": [], "workers_cpu": 0.0, "busy_percent": 0.0},
        )
        host["workers"].append(name)
        host["workers_cpu"] += report["cpu_percent"]
        # Every worker of a machine reads the same machine: the highest of their readings.
        host["busy_percent"] = max(host["busy_percent"], report.get("machine_busy_percent", 0.0))
    return [
        {
            "host": name,
            "cpus": host["cpus"],
            "workers": host["workers"],
            "workers_cpu_percent": round(host["workers_cpu"] / host["cpus"], 1),
            "busy_percent": host["busy_percent"],
        }
        for name, host in by_host.items()
    ]


def _no_pages() -> dict[str, Any]:
    return {"done": 0, "running": 0, "pages_per_second": 0.0}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
