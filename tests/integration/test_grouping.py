"""Which pages travel together: a job with R free task messages and W pages waiting sends
each page alone if W <= R, and otherwise spreads them over the R messages, up to
Settings.group_size pages each (WORDCRAWL_MAX_PAGES_PER_TASK, never above the per-host
limit: 3 here); while messages wait in Redis for a worker, they share as few messages as
that allows. A group's pages are fetched side by side and counted as if each had its
own task; a page that fails for now leaves its group and is retried alone, by Celery's own
retry of its task (the session's workers try no page twice, so this is where retries are
seen end to end).

These tests swap the session's workers (w1, w2) for one worker that tries a failed page
once more, and put them back afterwards. Nothing else is set: the grouping is the default.
"""

from __future__ import annotations

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
from processes import WorkerPool, node_name, wait_for

from job_tasks.celery_app import app
from job_tasks.celeryconfig import CRAWL_QUEUE
from job_tasks.sending import crawl_queue_waiting, enqueue_pages
from job_tasks.settings import Settings, get_settings
from job_tasks.storing import db as job_db
from job_tasks.storing.submission import JobRequest, record_job

pytestmark = pytest.mark.slow  # starts a worker of its own

IN_BROKER = Settings.job_tasks_in_broker  # free messages of a new job (16)


@pytest.fixture(scope="module")
def grouping_worker(
    workers: WorkerPool, worker_env: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerPool]:
    """One worker, g1, in place of w1 and w2, that tries a failed page once more."""
    workers.stop("w1")
    workers.stop("w2")
    pool = WorkerPool(
        {**worker_env, "WORDCRAWL_FETCH_RETRIES": "1"},
        Path(tmp_path_factory.mktemp("grouping-logs")),
    )
    try:
        pool.start("g1")
        yield pool
    finally:
        pool.stop_all()
        workers.start("w1", "w2")


def group_size() -> int:
    size = get_settings().group_size
    assert size == PER_HOST_CONCURRENCY  # the default bound (16), held to the per-host limit
    return size


def send_in_one_message(services, urls: list[str]) -> str:
    """Send a job whose pages all travel in one message (as a job with one free message
    sends its first group); return its id."""
    assert len(urls) <= group_size()
    request = JobRequest(urls, depth=0, max_pages=len(urls))
    job_id, pages = record_job(job_db.get_sessionmaker(services.database_url), request, 1)
    assert len({page.task_id for page in pages}) == 1
    enqueue_pages(pages)
    return str(job_id)


def pages_of(client, job_id: str) -> dict[str, dict]:
    return {page["url"]: page for page in client.get(f"/api/jobs/{job_id}/pages").get_json()}


def test_a_lone_page_travels_alone(client, grouping_worker, fixture_site, sql):
    job = wait_for_job(client, submit_job(client, [fixture_site.url(f"/ok?{uuid.uuid4().hex}")]))

    assert job["status"] == "done"
    (page,) = pages_of(client, job["id"]).values()
    # One task in Flower and in celery_taskmeta, for this one page.
    (task,) = sql("SELECT status FROM celery_taskmeta WHERE task_id = :id", id=page["task_id"])
    assert task.status == "SUCCESS"
    assert sql("SELECT count(*) FROM pages WHERE task_id = :id", id=page["task_id"])[0][0] == 1


def test_pages_that_fit_in_the_free_messages_each_travel_alone(
    client, grouping_worker, fixture_site
):
    urls = [fixture_site.url(f"/ok?alone={uuid.uuid4().hex}") for _ in range(IN_BROKER)]
    job = wait_for_job(client, submit_job(client, urls), timeout=60)

    assert job["pages"]["done"] == IN_BROKER
    assert len({page["task_id"] for page in pages_of(client, job["id"]).values()}) == IN_BROKER


def test_a_backlog_travels_in_groups_no_larger_than_the_bound(
    client, grouping_worker, fixture_site, sql
):
    # The seed links to 60 pages: found at once, more than the job's 16 free messages.
    seed = fixture_site.url(f"/links?n=60&ms=50&backlog={uuid.uuid4().hex}")
    job = wait_for_job(client, submit_job(client, [seed], depth=1), timeout=60)

    assert job["status"] == "done"
    assert job["pages"]["done"] == 61
    pages = pages_of(client, job["id"]).values()
    assert {page["word_count"] for page in pages if "/links?" not in page["url"]} == {
        sum(OK_COUNTS.values())
    }
    sizes = Counter(page["task_id"] for page in pages)
    assert max(sizes.values()) == group_size()  # grouped, up to the bound and no more
    assert len(sizes) < 61 / 2
    tasks = sql("SELECT name, status FROM celery_taskmeta WHERE task_id IN :ids", ids=tuple(sizes))
    assert {tuple(row) for row in tasks} == {("job_tasks.tasks.crawl_pages", "SUCCESS")}
    assert len(tasks) == len(sizes)


def test_each_page_of_a_group_ends_as_it_would_alone(
    client, grouping_worker, services, fixture_site, sql
):
    tag = uuid.uuid4().hex
    paths = ["/ok", "/no-words", "/missing"]
    urls = [fixture_site.url(f"{path}?t={tag}") for path in paths]
    job = wait_for_job(client, send_in_one_message(services, urls), timeout=60)

    assert job["status"] == "done"
    pages = pages_of(client, job["id"])
    assert len({page["task_id"] for page in pages.values()}) == 1  # one group of three
    ended = [(pages[url]["status"], pages[url]["word_count"], pages[url]["error"]) for url in urls]
    ok_words = sum(OK_COUNTS.values())
    assert ended == [("done", ok_words, None), ("done", 0, None), ("failed", None, "http_error")]
    rows = sql(
        "SELECT p.url, count(w.word) AS words, sum(w.count) AS total FROM pages p "
        "LEFT JOIN word_counts w ON w.page_id = p.id WHERE p.job_id = :j GROUP BY p.url",
        j=job["id"],
    )
    assert {row.url: (row.words, row.total) for row in rows} == {
        urls[0]: (len(OK_COUNTS), ok_words),
        urls[1]: (0, None),
        urls[2]: (0, None),
    }


def test_a_worn_out_page_of_a_group_fails_and_the_others_are_counted(
    client, grouping_worker, services, fixture_site, sql
):
    urls = [fixture_site.url(f"/ok?worn={uuid.uuid4().hex}"), fixture_site.url("/plain")]
    job = wait_for_job(
        client, send_job_with_a_worn_out_page(services.database_url, urls, in_broker=1)
    )

    assert job["status"] == "done"
    pages = pages_of(client, job["id"]).values()
    assert len({page["task_id"] for page in pages}) == 1  # sent together
    assert_gave_up_on_the_first_page(sql, job["id"], urls)


def test_the_pages_of_a_group_are_fetched_side_by_side(
    client, grouping_worker, services, fixture_site, sql
):
    # One group of pages that each take 600 ms at the site: long enough that they overlap
    # however slowly the worker's threads start.
    tag = uuid.uuid4().hex
    urls = [fixture_site.url(f"/delay?ms=600&grouped={tag}&n={n}") for n in range(group_size())]
    fixture_site.most_in_flight = 0
    job = wait_for_job(client, send_in_one_message(services, urls), timeout=60)

    assert job["status"] == "done"
    assert job["pages"]["done"] == len(urls)
    # The site served them side by side, as many at once as the per-host limit lets
    # through, and the pages were claimed and stored together.
    assert fixture_site.most_in_flight == PER_HOST_CONCURRENCY
    rows = sql("SELECT task_id, started_at, finished_at FROM pages WHERE job_id = :j", j=job["id"])
    assert len({(row.task_id, row.started_at, row.finished_at) for row in rows}) == 1


def test_a_page_that_fails_for_now_leaves_its_group_and_is_retried_alone(
    client, grouping_worker, services, fixture_site, sql
):
    flaky = fixture_site.url(f"/flaky?key={uuid.uuid4().hex}&fail=1")  # one 503, then OK
    urls = [fixture_site.url(f"/ok?grouped={uuid.uuid4().hex}") for _ in range(2)] + [flaky]
    job = wait_for_job(client, send_in_one_message(services, urls), timeout=60)

    assert job["status"] == "done"
    assert job["pages"]["done"] == 3
    pages = pages_of(client, job["id"])
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
    (page,) = pages_of(client, job["id"]).values()
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


def test_while_messages_wait_for_a_worker_a_jobs_pages_share_messages(
    client, grouping_worker, fixture_site
):
    # Every worker busy, as when a whole class submits at once: here g1 stops taking crawl
    # messages, so the next one waits in Redis. A job's pages then travel grouped even when
    # they would fit in its free messages; a lone page still travels alone.
    g1 = [node_name("g1")]
    assert app.control.cancel_consumer(CRAWL_QUEUE, destination=g1, reply=True)
    try:
        lone = submit_job(client, [fixture_site.url(f"/ok?lone={uuid.uuid4().hex}")])
        wait_for(crawl_queue_waiting, 10, "the lone page's message never waited in Redis")
        urls = [fixture_site.url(f"/ok?busy={uuid.uuid4().hex}") for _ in range(2 * group_size())]
        busy = submit_job(client, urls)

        sizes = Counter(page["task_id"] for page in pages_of(client, busy).values())
        assert sorted(sizes.values()) == [group_size()] * 2
        (lone_page,) = pages_of(client, lone).values()
        assert Counter(p["task_id"] for p in pages_of(client, lone).values()) == {
            lone_page["task_id"]: 1
        }
    finally:
        app.control.add_consumer(CRAWL_QUEUE, destination=g1, reply=True)

    for job_id in (lone, busy):
        job = wait_for_job(client, job_id, timeout=60)
        assert job["status"] == "done" and job["pages"]["failed"] == 0
    # The next tests' jobs are sent as on a quiet system again.
    wait_for(lambda: not crawl_queue_waiting(), 10, "crawl messages still wait in Redis")
