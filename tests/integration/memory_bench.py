"""Measure a worker's memory while it crawls pages that flood cookies (not a timed test).

    .venv/bin/python tests/integration/memory_bench.py [--pages 200] [--pool prefork]

Starts the hostile site (hostile_site.py) and a stack of its own (isolated.py: a manager
and one worker of 2 processes or threads, in a Redis database number and a PostgreSQL
database it claims and drops), crawls a few ordinary pages to warm the worker up, then
PAGES pages that each answer 95 Set-Cookie headers (94 of 64 KB, new names every time),
and prints the resident memory of the worker's processes before, after each 100 pages
and at the end, and how many requests carried a cookie back. A worker that kept cookies
would grow by ~6 MB a page; one that does not levels off at what one page needs to parse.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import psutil
from conftest import claim_redis_database, release_redis_database
from hostile_site import HostileSite
from isolated import Stack, new_database_url, running_stack

from job_tasks.settings import Settings

MB = 1024 * 1024


def resident_mb(stack: Stack) -> dict[str, float]:
    """Return the RSS of each process of the stack's worker (its pool's included), in MB."""
    (worker,) = stack.workers.processes.values()
    root = psutil.Process(worker.pid)
    processes = [root, *root.children(recursive=True)]
    return {f"{p.pid} {p.name()[:15]}": p.memory_info().rss / MB for p in processes}


def crawl(stack: Stack, urls: list[str], per_job: int = 100) -> list[float]:
    """Crawl URLs in jobs of at most `per_job`, one after another; fail unless all are done.
    Return the worker's RSS in all (MB) after each job."""
    totals = []
    for start in range(0, len(urls), per_job):
        job = stack.api.wait_for_job(stack.api.submit(urls[start : start + per_job]), 600)
        if job["pages"]["done"] != job["pages"]["total"]:
            sys.exit(f"not every page was counted: {job['pages']}")
        totals.append(sum(resident_mb(stack).values()))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--pool", choices=["prefork", "threads"], default="prefork")
    args = parser.parse_args()
    base = Settings.from_env()
    site = HostileSite().start()
    broker_url = claim_redis_database(base.broker_url)
    env = {
        "CELERY_BROKER_URL": broker_url,
        "DATABASE_URL": new_database_url(base.database_url),
        "WORDCRAWL_ALLOWED_HOSTS": ",".join(site.allowed_hosts),
        "WORDCRAWL_SUBMISSIONS_PER_MINUTE": "100000",
        "WORDCRAWL_WORKER_POOL": args.pool,
        "WORDCRAWL_WORKER_CONCURRENCY": "2",
    }
    try:
        with running_stack(env, Path(tempfile.mkdtemp(prefix="memory-bench-"))) as stack:
            stack.start_manager()
            stack.workers.start("mem")
            crawl(stack, [site.url(f"/warm-up/{n}") for n in range(8)])
            before = resident_mb(stack)
            totals = crawl(stack, [site.url(f"/cookies?page={n}") for n in range(args.pages)])
            after = resident_mb(stack)
    finally:
        release_redis_database(broker_url)
        site.stop()
    print(f"{args.pool} worker, {args.pages} cookie-flood pages; RSS in MB:")
    for name in before:
        print(f"  {name:<24} before {before[name]:7.1f}   after {after.get(name, 0):7.1f}")
    print(f"  {'in all':<24} before {sum(before.values()):7.1f}   after {sum(after.values()):7.1f}")
    print("  in all after each 100 pages: " + ", ".join(f"{mb:.1f}" for mb in totals))
    sent_back = sum(header is not None for header in site.cookie_headers)
    print(f"requests that carried a cookie back: {sent_back} of {len(site.cookie_headers)}")


if __name__ == "__main__":
    main()
