"""`wordcrawl bench --class`: a class of students submitting their jobs at the same moment.

It starts the default stack (two workers, wordcrawl's defaults: the per-host limit of 8
included) as stack.py does, and serves 30 demo sites (100 ms latency), one per port of
127.0.0.1: each is a host of its own for the per-host limit. Then 30 clients, one thread
each, submit a 30-page crawl (depth 3) of their own site through the JSON API at the same
moment, and the bench prints every job's time from its submission to its end: p50, p95
and max. The manager's limit of submissions per minute (30 per address by default, and
every client here has the same address) is raised for the bench, and for the bench only,
with WORDCRAWL_SUBMISSIONS_PER_MINUTE.

A job's end is read from its row (jobs.finished_at), so the clients need not poll the
manager, which would take CPU from the workers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from job_tasks.settings import Settings
from job_tasks.storing.db import get_engine

from ..client import ApiClient, ApiClientError
from ..demo_site import DemoSite
from .isolated import (
    bench_environ,
    counted_pages,
    isolated_servers,
    open_jobs,
    running_stack,
)
from .sites import serve_sites
from .speed import BenchError, wait_until

SUBMISSIONS_PER_MINUTE = 10_000  # the bench's clients all come from 127.0.0.1


@dataclass(frozen=True)
class ClassPlan:
    """The class: how many clients, how big each one's job."""

    clients: int = 30
    job_pages: int = 30
    latency_ms: int = 100
    depth: int = 3
    workers: int = 2
    timeout: float = 600.0
    keep: bool = False


@dataclass(frozen=True)
class ClassRun:
    """Each job's time from submission to done, and what was counted."""

    clients: int
    job_pages: int
    latency_ms: int
    workers: int
    job_seconds: list[float]  # one per client, in the order they were submitted
    p50_seconds: float
    p95_seconds: float
    max_seconds: float
    pages: int
    done: int
    words_ok: int
    pages_per_second: float  # all the class's pages, first queued to last done

    @property
    def ok(self) -> bool:
        return len(self.job_seconds) == self.clients and self.done == self.pages == self.words_ok

    def lines(self) -> list[str]:
        times = " ".join(f"{s:.1f}" for s in sorted(self.job_seconds))
        return [
            f"job times   p50 {self.p50_seconds:.2f} s, p95 {self.p95_seconds:.2f} s, "
            f"max {self.max_seconds:.2f} s  ({self.clients} jobs of {self.job_pages} pages, "
            "submission to done)",
            f"each (s)    {times}",
            f"pages/s     {self.pages_per_second:.1f}  ({self.done} of {self.pages} pages "
            f"counted; words right on {self.words_ok})",
            f"counted     {'yes' if self.ok else 'NO'}",
        ]


def run_class_bench(
    settings: Settings, plan: ClassPlan, echo: Callable[[str], None] = print
) -> ClassRun:
    """Serve the class's sites, start the stack, submit every job at once; time them."""
    site = DemoSite(latency_ms=plan.latency_ms)  # 100 pages, 85 within depth 3
    with (
        isolated_servers(settings, plan.keep) as place,
        serve_sites(site, plan.clients, place.work_dir / "demo-sites.log") as site_urls,
    ):
        echo(
            f"a class: {plan.clients} clients each submit a depth-{plan.depth} job of "
            f"{plan.job_pages} pages of a demo site of its own ({plan.latency_ms} ms latency) "
            f"at once; {plan.workers} workers, wordcrawl's defaults but "
            f"WORDCRAWL_SUBMISSIONS_PER_MINUTE={SUBMISSIONS_PER_MINUTE} for the bench; "
            f"{place.describe()}"
        )
        extra = {"WORDCRAWL_SUBMISSIONS_PER_MINUTE": str(SUBMISSIONS_PER_MINUTE)}
        with running_stack(place, bench_environ(place, site_urls, extra), plan.workers) as stack:
            submitted = _submit_together(stack.manager_url, site_urls, plan)
            job_ids = [job_id for job_id, _ in submitted]
            wait_until(
                lambda: open_jobs(place.database_url, job_ids) == 0,
                plan.timeout,
                "not every job ended in time",
            )
        ended = _finished_at(place.database_url, job_ids)
        counted = counted_pages(place.database_url, job_ids, site)
    seconds = [round(ended[job_id] - at, 2) for job_id, at in submitted]
    return ClassRun(
        clients=plan.clients,
        job_pages=plan.job_pages,
        latency_ms=plan.latency_ms,
        workers=plan.workers,
        job_seconds=seconds,
        p50_seconds=_percentile(seconds, 50),
        p95_seconds=_percentile(seconds, 95),
        max_seconds=max(seconds),
        pages=counted.pages,
        done=counted.done,
        words_ok=counted.words_ok,
        pages_per_second=counted.pages_per_second,
    )


def _submit_together(
    manager_url: str, site_urls: list[str], plan: ClassPlan
) -> list[tuple[str, float]]:
    """Each client (a thread) submits its job when all are ready: (job id, when), in order."""
    start = threading.Barrier(len(site_urls))
    results: list[tuple[str, float] | BaseException | None] = [None] * len(site_urls)

    def client(index: int) -> None:
        api = ApiClient(manager_url, timeout=60)
        start.wait()
        submitted = time.time()
        try:
            job = api.submit([site_urls[index]], plan.depth, plan.job_pages)
            results[index] = (job["id"], submitted)
        except ApiClientError as err:
            results[index] = err

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(site_urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [result for result in results if not isinstance(result, tuple)]
    if refused:
        raise BenchError(f"{len(refused)} submissions failed, the first: {refused[0]}")
    return results  # type: ignore[return-value]


def _finished_at(database_url: str, job_ids: list[str]) -> dict[str, float]:
    """Each job's end, as a Unix time."""
    engine = get_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT CAST(id AS text), extract(epoch FROM finished_at) FROM jobs "
                "WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": job_ids},
        ).all()
    return {job_id: float(at) for job_id, at in rows}


def _percentile(values: list[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest value at least `percent`% of them reach."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
