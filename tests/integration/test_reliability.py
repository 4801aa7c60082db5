"""The job record is the truth, not the broker: pages whose messages are lost still run.

The workers of these tests run the upkeep that looks for lost messages every 2 seconds
(WORDCRAWL_RECONCILE_SECONDS); by default it is every 30.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter

import pytest
import redis
from conftest import (
    assert_gave_up_on_the_first_page,
    send_job_with_a_worn_out_page,
    submit_job,
    wait_for_job,
)
from processes import wait_for
from sqlalchemy import text

import job_tasks
from job_tasks.page_errors import Timeout
from job_tasks.storing import pages as store
from job_tasks.storing.db import get_engine, get_sessionmaker
from job_tasks.storing.submission import JobRequest, record_job
from job_tasks.tasks import crawl_pages
from job_tasks.upkeep.broker import CHUNK, broker_task_ids

pytestmark = pytest.mark.slow  # waits through the upkeep's periods


def test_pages_recorded_but_never_sent_are_found_and_crawled(
    client, workers, services, fixture_site
):
    # A job written to PostgreSQL whose messages never reached Redis (as if the manager
    # had died between the commit and the send).
    request = JobRequest([fixture_site.url("/ok"), fixture_site.url("/plain")], 0, 10)
    job_id, _pages = record_job(get_sessionmaker(services.database_url), request, in_broker=16)

    job = wait_for_job(client, str(job_id), timeout=30)

    assert job["status"] == "done"
    assert job["pages"]["done"] == 2


def test_a_job_survives_its_queued_messages_being_lost(
    client, workers, services, fixture_site, sql
):
    broker = redis.Redis.from_url(services.broker_url)
    urls = [fixture_site.url(f"/delay?ms=300&lost={n}") for n in range(16)]
    job_id = submit_job(client, urls)
    wait_for(lambda: broker.llen("crawl") > 0, 10, "no message waits in the queue")

    lost = broker.delete("crawl")  # the queue is gone, as after a restart without AOF

    job = wait_for_job(client, job_id, timeout=60)
    assert lost == 1
    assert job["status"] == "done"
    assert job["pages"]["done"] == 16
    (rows,) = sql(
        "SELECT count(*) FROM word_counts w JOIN pages p ON p.id = w.page_id WHERE p.job_id = :job",
        job=job_id,
    )[0:1]
    assert rows[0] == 16 * 9  # each page's 9 distinct words, once: nothing counted twice


def test_a_page_whose_worker_died_at_every_start_fails_instead_of_looping(
    client, workers, services, fixture_site, sql
):
    urls = [fixture_site.url(f"/ok?worn={uuid.uuid4().hex}"), fixture_site.url("/plain")]
    job = wait_for_job(client, send_job_with_a_worn_out_page(services.database_url, urls))

    assert job["status"] == "done"
    assert_gave_up_on_the_first_page(sql, job["id"], urls)


def test_starts_ended_by_an_outage_do_not_wear_a_page_out(client, workers, services, sql):
    # A page started three times already, by a message that Celery sent again three times
    # because PostgreSQL or Redis was away (its `retries`): those starts say nothing
    # about the page, so it is crawled, not given up as worn out.
    urls = [f"http://127.0.0.1:1/never-fetched-{uuid.uuid4().hex}"]
    request = JobRequest(urls, depth=0, max_pages=1)
    job_id, ((page_id, task_id, _url),) = record_job(
        get_sessionmaker(services.database_url), request, in_broker=16
    )
    with get_engine(services.database_url).begin() as conn:
        conn.execute(text("UPDATE pages SET attempts = 3 WHERE id = :id"), {"id": page_id})

    crawl_pages.apply_async(args=[[page_id]], task_id=task_id, retries=3)
    job = wait_for_job(client, str(job_id), timeout=30)

    (page,) = sql("SELECT error, message, attempts FROM pages WHERE id = :id", id=page_id)
    assert job["status"] == "failed"  # port 1 of this machine: nothing listens there
    assert (page.error, page.attempts) == ("blocked_address", 4), page.message


def test_a_slow_page_is_never_run_twice_while_its_worker_lives(client, workers, fixture_site, sql):
    # A byte every 0.3 s until the page's deadline (5 s here): more than two periods of
    # the census (2 s), on a worker that goes on reporting that it lives.
    url = fixture_site.url(f"/drip-body?slow={uuid.uuid4().hex}")
    job = wait_for_job(client, submit_job(client, [url]), timeout=30)

    (page,) = sql("SELECT status, error, attempts FROM pages WHERE job_id = :j", j=job["id"])
    assert (page.status, page.error, page.attempts) == ("failed", "timeout", 1)


def test_the_upkeep_runs_once_a_period_for_the_whole_deployment(workers):
    # Both session workers take part; each period (on Redis's clock), one of them runs it.
    def runs() -> Counter[int]:
        found: Counter[int] = Counter()
        for name in ("w1", "w2"):
            log = workers.log_path(name).read_text(errors="replace")
            found.update(int(n) for n in re.findall(r"upkeep of period (\d+):", log))
        return found

    first = max(runs())
    wait_for(lambda: max(runs()) >= first + 5, 30, "the upkeep stopped running")

    window = range(first + 1, first + 5)
    seen = runs()
    assert all(seen[n] <= 1 for n in window), seen  # never twice in a period
    assert sum(seen[n] for n in window) >= 3, seen  # and (nearly) every period


def test_the_reconciler_sees_every_message_of_a_long_queue(services):
    # The reconciler reads a queue a chunk of messages at a time (broker.CHUNK); a queue
    # longer than several chunks must still give every task id. No worker consumes this
    # queue, and the test removes it.
    app = job_tasks.app
    queue = "wordcrawl-test-long-queue"
    sent = {f"long-queue-{n}" for n in range(2 * CHUNK + 500)}
    try:
        with app.producer_or_acquire() as producer:
            for task_id in sent:
                app.send_task(
                    "job_tasks.tasks.crawl_pages",
                    queue=queue,
                    task_id=task_id,
                    producer=producer,
                )

        assert broker_task_ids(app, [queue]) == sent
    finally:
        redis.Redis.from_url(services.broker_url).delete(queue)


def test_only_the_run_that_claimed_a_page_last_may_end_it(services, sql):
    # Two runs of one page, as when a worker's process dies and its message is handed
    # out again under the same task id: the second claim takes the page over, and the
    # first run, should it still be going, can neither count it nor fail it, while the
    # page is still running. Straight against PostgreSQL, with no worker in between.
    request = JobRequest(["http://example.test/token"], 0, 1)
    engine = get_engine(services.database_url)
    job_id, pages = record_job(get_sessionmaker(services.database_url), request, in_broker=16)
    page_id, task_id = pages[0].id, pages[0].task_id
    counted = store.CountedPage(200, "t", {"token": 1}, 5)

    [first] = store.claim_pages(engine, [page_id], "w1@test", task_id)
    [second] = store.claim_pages(engine, [page_id], "w2@test", task_id)
    assert (first.attempts, second.attempts) == (1, 2)

    assert store.finish_pages(engine, [(first, counted)], in_broker=16)[0] == set()
    assert store.fail_page(engine, first, Timeout("late"), 5, in_broker=16) is None
    [row] = sql("SELECT status, worker, attempts FROM pages WHERE id = :id", id=page_id)
    assert tuple(row) == ("running", "w2@test", 2)  # untouched by the first run

    assert store.finish_pages(engine, [(second, counted)], in_broker=16)[0] == {page_id}
    rows = sql("SELECT word, count FROM word_counts WHERE page_id = :id", id=page_id)
    assert [tuple(r) for r in rows] == [("token", 1)]
    assert sql("SELECT status FROM jobs WHERE id = :id", id=job_id)[0].status == "done"
    # A message whose page was sent again under another id claims nothing.
    assert store.claim_pages(engine, [page_id], "w1@test", str(uuid.uuid4())) == []


def test_a_page_found_closer_after_it_was_counted_is_crawled_again_from_there(services, sql):
    # Pages end in any order: here the seed's link to /a is held up (its worker died, say)
    # while /b -> /c -> /d is crawled, so /d is counted at the last depth and follows no
    # link. When /a ends at last, its link makes /d one level closer: /d is crawled again,
    # and its own link, /e, is then found. Straight against PostgreSQL, as the test above.
    site = "http://example.test/"
    engine = get_engine(services.database_url)
    job_id, _ = record_job(
        get_sessionmaker(services.database_url), JobRequest([site], 3, 100), in_broker=16
    )

    def crawl(url: str, *links: str) -> int:
        [row] = sql(
            "SELECT id, task_id FROM pages WHERE job_id = :job AND url = :url",
            job=job_id,
            url=site + url,
        )
        [page] = store.claim_pages(engine, [row.id], "w1@test", row.task_id)
        counted = store.CountedPage(
            200, url, {url or "home": 1}, 5, [site + link for link in links]
        )
        store.finish_pages(engine, [(page, counted)], in_broker=16)
        return page.depth

    def pages() -> dict[str, tuple[str, int]]:
        rows = sql("SELECT url, status, depth FROM pages WHERE job_id = :job", job=job_id)
        return {row.url.removeprefix(site): (row.status, row.depth) for row in rows}

    crawl("", "a", "b")
    assert [crawl("b", "c"), crawl("c", "d"), crawl("d", "e")] == [1, 2, 3]
    assert "e" not in pages()  # /d is at the last depth: its link is not followed

    crawl("a", "d")
    assert pages()["d"] == ("queued", 2)
    assert (
        sql(
            "SELECT count(*) FROM word_counts w JOIN pages p ON p.id = w.page_id "
            "WHERE p.url = :url",
            url=site + "d",
        )[0][0]
        == 0
    )
    assert crawl("d", "e") == 2
    assert pages()["e"] == ("queued", 3)
    crawl("e")
    assert {url: status for url, (status, _) in pages().items()} == dict.fromkeys(
        ["", "a", "b", "c", "d", "e"], "done"
    )
    assert sql("SELECT status FROM jobs WHERE id = :id", id=job_id)[0].status == "done"
