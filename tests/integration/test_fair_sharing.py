"""Fair sharing: a one-page job does not wait behind another student's big crawl.

A job has at most WORDCRAWL_JOB_TASKS_IN_BROKER task messages (default 16) in the broker at
once, waiting or running, each of one page or of a group; its other pages wait in
PostgreSQL and are sent as its messages end (storing/release.py).
"""

from __future__ import annotations

import time

import pytest
from conftest import submit_job, wait_for_job
from processes import wait_for

from job_tasks.settings import Settings, get_settings

pytestmark = pytest.mark.slow  # runs a big crawl

IN_BROKER = Settings.job_tasks_in_broker
# A job's task messages in the broker: the distinct task ids of its open pages.
MESSAGES = (
    "SELECT count(DISTINCT task_id) FROM pages WHERE job_id = :job "
    "AND status IN ('queued', 'running') AND task_id IS NOT NULL"
)


def test_a_small_job_finishes_during_a_big_crawl(client, workers, fixture_site, demo_site, sql):
    # The big crawl: a page linking to 300 pages of 50 ms each, far more than the site
    # serves at once (3, the per-host limit here: ~5 s of work). Its 16 messages in the
    # broker carry up to 3 pages each: 48 pages ahead of the small job, not 300.
    started = time.monotonic()
    big = submit_job(
        client, [fixture_site.url("/links?n=300&ms=50&fair=1")], depth=1, max_pages=400
    )
    wait_for(
        lambda: client.get(f"/api/jobs/{big}").get_json()["pages"]["total"] == 301,
        30,
        "the crawl did not find its 300 links",
    )
    # The rest wait in PostgreSQL, without a task id, behind the small job.
    assert sql(MESSAGES, job=big)[0][0] <= IN_BROKER

    small_started = time.monotonic()
    small = wait_for_job(client, submit_job(client, [demo_site.url + "page/7"]), timeout=60)
    small_seconds = time.monotonic() - small_started
    big_job = client.get(f"/api/jobs/{big}").get_json()
    assert small["status"] == "done"
    assert big_job["status"] == "running"  # it came back while the crawl was still going

    big_job = wait_for_job(client, big, timeout=120)
    big_seconds = time.monotonic() - started
    assert big_job["status"] == "done"
    assert big_job["pages"]["done"] == 301
    # Behind at most IN_BROKER messages of the crawl, not behind its 300 pages.
    assert small_seconds < big_seconds / 4, (small_seconds, big_seconds)


def test_a_job_never_has_more_than_its_share_of_messages_in_the_broker(
    client, workers, fixture_site, sql
):
    group = get_settings().group_size
    pages = IN_BROKER * group + 8
    job_id = submit_job(client, [fixture_site.url(f"/delay?ms=50&sent={n}") for n in range(pages)])
    # Right after submission: IN_BROKER messages of `group` pages each; the other pages
    # wait without a task id (the pages take seconds on the 3 slots of the host).
    in_broker, waiting = sql(
        "SELECT count(*) FILTER (WHERE task_id IS NOT NULL AND status IN ('queued', 'running')),"
        " count(*) FILTER (WHERE task_id IS NULL) FROM pages WHERE job_id = :job",
        job=job_id,
    )[0]
    assert sql(MESSAGES, job=job_id)[0][0] == IN_BROKER
    assert (in_broker, waiting) == (IN_BROKER * group, 8)

    # While it runs, its pages are released as its messages end, never past its share.
    seen = []

    def ended() -> bool:
        seen.append(sql(MESSAGES, job=job_id)[0][0])
        return client.get(f"/api/jobs/{job_id}").get_json()["status"] in ("done", "failed")

    wait_for(ended, 60, "the job did not end", interval=0.05)
    job = wait_for_job(client, job_id)

    assert len(seen) > 5 and max(seen) <= IN_BROKER
    assert job["pages"]["done"] == pages
    # No message carried more than a group's pages.
    sizes = sql("SELECT count(*) FROM pages WHERE job_id = :job GROUP BY task_id", job=job_id)
    assert max(row[0] for row in sizes) == group
