"""Fair sharing: a one-page job does not wait behind another student's big crawl.

A job has at most WORDCRAWL_JOB_PAGES_IN_BROKER pages (default 16) in the broker at once;
its other pages wait in PostgreSQL and are sent as its pages end (store.release_pages).
"""

from __future__ import annotations

import time

import pytest
from conftest import submit_job, wait_for_job
from processes import wait_for

from job_tasks.settings import Settings

pytestmark = pytest.mark.slow  # runs a big crawl

IN_BROKER = Settings.job_pages_in_broker


def test_a_small_job_finishes_during_a_big_crawl(client, workers, fixture_site, demo_site, sql):
    # The big crawl: a page linking to 150 pages of 100 ms each, far more than the test
    # workers' 4 slots can take at once (~5 s of work).
    started = time.monotonic()
    big = submit_job(
        client, [fixture_site.url("/links?n=150&ms=100&fair=1")], depth=1, max_pages=200
    )
    wait_for(
        lambda: client.get(f"/api/jobs/{big}").get_json()["pages"]["total"] == 151,
        30,
        "the crawl did not find its 150 links",
    )
    in_broker = sql(
        "SELECT count(*) FROM pages WHERE job_id = :job AND status IN ('queued', 'running') "
        "AND task_id IS NOT NULL",
        job=big,
    )[0][0]
    # The rest wait in PostgreSQL, without a task id, behind the small job.
    assert in_broker <= IN_BROKER

    small_started = time.monotonic()
    small = wait_for_job(client, submit_job(client, [demo_site.url + "page/7"]), timeout=60)
    small_seconds = time.monotonic() - small_started
    big_job = client.get(f"/api/jobs/{big}").get_json()
    assert small["status"] == "done"
    assert big_job["status"] == "running"  # it came back while the crawl was still going

    big_job = wait_for_job(client, big, timeout=120)
    big_seconds = time.monotonic() - started
    assert big_job["status"] == "done"
    assert big_job["pages"]["done"] == 151
    # Behind at most IN_BROKER pages of the crawl, not behind its 150.
    assert small_seconds < big_seconds / 5, (small_seconds, big_seconds)


def test_waiting_pages_get_their_task_id_when_sent(client, workers, fixture_site, sql):
    job_id = submit_job(
        client, [fixture_site.url(f"/delay?ms=50&sent={n}") for n in range(IN_BROKER + 8)]
    )
    # Right after submission, IN_BROKER of the job's pages are in the broker; the others
    # wait without a task id (the 24 pages take over a second on the 3 slots of the host).
    in_broker, waiting = sql(
        "SELECT count(*) FILTER (WHERE task_id IS NOT NULL AND status IN ('queued', 'running')),"
        " count(*) FILTER (WHERE task_id IS NULL) FROM pages WHERE job_id = :job",
        job=job_id,
    )[0]
    assert in_broker == IN_BROKER
    assert waiting >= 1

    job = wait_for_job(client, job_id, timeout=60)

    assert job["pages"]["done"] == IN_BROKER + 8
    # Every page was sent in the end, each with a task id of its own.
    rows = sql("SELECT count(DISTINCT task_id) FROM pages WHERE job_id = :job", job=job_id)
    assert rows[0][0] == IN_BROKER + 8
