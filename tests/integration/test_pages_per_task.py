"""Several pages per task (WORDCRAWL_PAGES_PER_TASK): pages travel in groups, one message
each, fetched side by side, and are counted as if each had its own; a page that fails for
now leaves its group. A page sent alone is retried by Celery's own retry of its task (the
session's workers try no page twice, so this is where retries are seen end to end).

These tests swap the session's workers (w1, w2) for one worker sending five pages per
task and trying a failed page once more, and put them back afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    PER_HOST_CONCURRENCY,
    assert_gave_up_on_the_first_page,
    send_job_with_a_worn_out_page,
    submit_job,
    wait_for_job,
)
from fixture_site import OK_COUNTS
from processes import WorkerPool

from job_tasks.settings import get_settings

pytestmark = pytest.mark.slow  # starts workers of its own

PER_TASK = 5


@pytest.fixture(scope="module")
def grouping_worker(
    workers: WorkerPool, worker_env: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerPool]:
    """One worker, g1, in place of w1 and w2, with the test process sending as it does."""
    env = {
        "WORDCRAWL_PAGES_PER_TASK": str(PER_TASK),
        "WORDCRAWL_FETCH_RETRIES": "1",
    }
    workers.stop("w1")
    workers.stop("w2")
    pool = WorkerPool({**worker_env, **env}, Path(tmp_path_factory.mktemp("grouping-logs")))
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # the API (start_job) in this process groups the pages too
    get_settings.cache_clear()
    try:
        pool.start("g1")
        yield pool
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        pool.stop_all()
        workers.start("w1", "w2")


def test_pages_sent_together_share_a_task_and_are_all_counted(
    client, grouping_worker, fixture_site, sql
):
    urls = [fixture_site.url(f"/ok?grouped={uuid.uuid4().hex}") for _ in range(12)]
    job = wait_for_job(client, submit_job(client, urls), timeout=60)

    assert job["status"] == "done"
    assert job["pages"]["done"] == 12
    pages = client.get(f"/api/jobs/{job['id']}/pages").get_json()
    assert {page["word_count"] for page in pages} == {sum(OK_COUNTS.values())}
    # Three messages: five, five and two pages, in the order they were submitted.
    groups = Counter(page["task_id"] for page in pages)
    assert sorted(groups.values()) == [2, 5, 5]
    tasks = sql(
        "SELECT task_id, name, status FROM celery_taskmeta WHERE task_id IN :ids",
        ids=tuple(groups),
    )
    assert {(row.name, row.status) for row in tasks} == {("job_tasks.tasks.crawl_pages", "SUCCESS")}
    assert len(tasks) == 3


def test_each_page_of_a_group_ends_as_it_would_alone(client, grouping_worker, fixture_site, sql):
    tag = uuid.uuid4().hex
    paths = ["/ok", "/no-words", "/missing", "/ok?again", "/no-words?again"]
    urls = [fixture_site.url(f"{path}{'&' if '?' in path else '?'}t={tag}") for path in paths]
    job = wait_for_job(client, submit_job(client, urls), timeout=60)

    assert job["status"] == "done"
    pages = {page["url"]: page for page in client.get(f"/api/jobs/{job['id']}/pages").get_json()}
    assert len({page["task_id"] for page in pages.values()}) == 1  # one group of five
    ended = [(pages[url]["status"], pages[url]["word_count"], pages[url]["error"]) for url in urls]
    ok_words = sum(OK_COUNTS.values())
    assert ended == [
        ("done", ok_words, None),
        ("done", 0, None),
        ("failed", None, "http_error"),
        ("done", ok_words, None),
        ("done", 0, None),
    ]
    rows = sql(
        "SELECT p.url, count(w.word) AS words, sum(w.count) AS total FROM pages p "
        "LEFT JOIN word_counts w ON w.page_id = p.id WHERE p.job_id = :j GROUP BY p.url",
        j=job["id"],
    )
    assert {row.url: (row.words, row.total) for row in rows} == {
        urls[0]: (len(OK_COUNTS), ok_words),
        urls[1]: (0, None),
        urls[2]: (0, None),
        urls[3]: (len(OK_COUNTS), ok_words),
        urls[4]: (0, None),
    }


def test_a_worn_out_page_of_a_group_fails_and_the_others_are_counted(
    client, grouping_worker, services, fixture_site, sql
):
    urls = [fixture_site.url(f"/ok?worn={uuid.uuid4().hex}"), fixture_site.url("/plain")]
    job = wait_for_job(client, send_job_with_a_worn_out_page(services.database_url, urls))

    assert job["status"] == "done"
    pages = client.get(f"/api/jobs/{job['id']}/pages").get_json()
    assert len({page["task_id"] for page in pages}) == 1  # sent together
    assert_gave_up_on_the_first_page(sql, job["id"], urls)


def test_the_pages_of_a_group_are_fetched_side_by_side(client, grouping_worker, fixture_site, sql):
    # One group of five pages that each take 600 ms at the site: long enough that the
    # first three overlap however slowly the worker's threads start.
    urls = [fixture_site.url(f"/delay?ms=600&grouped={uuid.uuid4().hex}") for _ in range(PER_TASK)]
    fixture_site.most_in_flight = 0
    job = wait_for_job(client, submit_job(client, urls), timeout=60)

    assert job["status"] == "done"
    assert job["pages"]["done"] == PER_TASK
    # The site served them side by side, as many at once as the per-host limit lets
    # through, and the pages were claimed and stored together.
    assert fixture_site.most_in_flight == PER_HOST_CONCURRENCY
    rows = sql("SELECT task_id, started_at, finished_at FROM pages WHERE job_id = :j", j=job["id"])
    assert len({(row.task_id, row.started_at, row.finished_at) for row in rows}) == 1


def test_a_page_that_fails_for_now_leaves_its_group_and_is_retried_alone(
    client, grouping_worker, fixture_site, sql
):
    flaky = fixture_site.url(f"/flaky?key={uuid.uuid4().hex}&fail=1")  # one 503, then OK
    urls = [fixture_site.url(f"/ok?grouped={uuid.uuid4().hex}") for _ in range(2)] + [flaky]
    job = wait_for_job(client, submit_job(client, urls), timeout=60)

    assert job["status"] == "done"
    assert job["pages"]["done"] == 3
    pages = {page["url"]: page for page in client.get(f"/api/jobs/{job['id']}/pages").get_json()}
    group = {pages[url]["task_id"] for url in urls[:2]}
    assert len(group) == 1
    # Tried once in the group, then as a task of its own, whose id its row now carries.
    assert pages[flaky]["task_id"] not in group
    (task,) = sql(
        "SELECT name, status FROM celery_taskmeta WHERE task_id = :id", id=pages[flaky]["task_id"]
    )
    assert (task.name, task.status) == ("job_tasks.tasks.crawl_pages", "SUCCESS")
    history = sql(
        "SELECT a.outcome, a.error, a.http_status FROM page_attempts a "
        "JOIN pages p ON p.id = a.page_id WHERE p.job_id = :job AND p.url = :url",
        job=job["id"],
        url=flaky,
    )
    assert [tuple(row) for row in history] == [("retried", "http_error", 503)]


def test_a_page_sent_alone_is_retried_by_its_own_task(client, grouping_worker, fixture_site, sql):
    flaky = fixture_site.url(f"/flaky?key={uuid.uuid4().hex}&fail=1")  # one 503, then OK
    job = wait_for_job(client, submit_job(client, [flaky]), timeout=60)

    assert job["status"] == "done"
    (page,) = client.get(f"/api/jobs/{job['id']}/pages").get_json()
    # Celery's retry sends the same task again: one task id, its last state SUCCESS.
    (task,) = sql(
        "SELECT name, status FROM celery_taskmeta WHERE task_id = :id", id=page["task_id"]
    )
    assert (task.name, task.status) == ("job_tasks.tasks.crawl_pages", "SUCCESS")
    attempts = sql(
        "SELECT a.outcome, a.http_status, p.attempts FROM page_attempts a "
        "JOIN pages p ON p.id = a.page_id WHERE p.job_id = :job",
        job=job["id"],
    )
    assert [tuple(row) for row in attempts] == [("retried", 503, 2)]
