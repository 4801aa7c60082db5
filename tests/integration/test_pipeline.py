"""A job goes through the whole flow: API → Redis → two real workers → PostgreSQL."""

from __future__ import annotations

import uuid
from collections import Counter

from processes import node_name

from job_tasks import app
from job_tasks.sending import enqueue_pages
from job_tasks.storing.release import NewPage


def test_demo_pages_are_counted_exactly_by_the_word_rules(crawl, demo_site, sql):
    numbers = [0, 1, 7, 23]
    urls = [demo_site.url + ("" if n == 0 else f"page/{n}") for n in numbers]

    job = crawl(urls)

    assert job["status"] == "done"
    assert job["pages"] == {
        "total": 4,
        "queued": 0,
        "running": 0,
        "done": 4,
        "failed": 0,
        "skipped": 0,
    }
    assert job["finished_at"] is not None
    for n, url in zip(numbers, urls, strict=True):
        expected = demo_site.site.expected_counts(n)
        rows = sql(
            "SELECT w.word, w.count FROM word_counts w JOIN pages p ON p.id = w.page_id "
            "WHERE p.job_id = :job AND p.url = :url",
            job=job["id"],
            url=url,
        )
        assert Counter(dict(rows)) == expected
        page = sql(
            "SELECT status, http_status, title, word_count, unique_words FROM pages "
            "WHERE job_id = :job AND url = :url",
            job=job["id"],
            url=url,
        )[0]
        assert tuple(page) == ("done", 200, f"Demo page {n}", expected.total(), len(expected))


def test_job_and_seed_urls_are_recorded_in_order(crawl, fixture_site, sql):
    urls = [fixture_site.url("/plain"), fixture_site.url("/ok")]

    job = crawl(urls, depth=0, max_pages=5)

    assert job["urls"] == urls
    rows = sql(
        "SELECT position, url FROM job_urls WHERE job_id = :job ORDER BY position", job=job["id"]
    )
    assert [tuple(row) for row in rows] == [(0, urls[0]), (1, urls[1])]
    stored = sql(
        "SELECT status, depth, max_pages, created_at <= started_at, "
        "started_at <= finished_at FROM jobs WHERE id = :job",
        job=job["id"],
    )[0]
    assert tuple(stored) == ("done", 0, 5, True, True)


def test_both_workers_take_part_and_celery_records_who_ran_what(crawl, fixture_site, sql):
    # Pages that take a moment each, so that both workers get some.
    urls = [fixture_site.url(f"/delay?ms=300&n={n}") for n in range(12)]

    job = crawl(urls)

    assert job["status"] == "done"
    rows = sql(
        "SELECT p.worker, p.task_id, t.status, t.worker, t.name FROM pages p "
        "JOIN celery_taskmeta t ON t.task_id = p.task_id WHERE p.job_id = :job",
        job=job["id"],
    )
    assert len(rows) == 12
    assert {row[0] for row in rows} == {node_name("w1"), node_name("w2")}
    for page_worker, _task_id, state, task_worker, task_name in rows:
        assert state == "SUCCESS"
        assert task_worker == page_worker
        assert task_name == "job_tasks.tasks.crawl_pages"


def test_the_api_shows_pages_and_top_words(crawl, client, fixture_site):
    job = crawl([fixture_site.url("/ok"), fixture_site.url("/plain")])

    pages = client.get(f"/api/jobs/{job['id']}/pages").get_json()
    assert [p["url"] for p in pages] == [fixture_site.url("/ok"), fixture_site.url("/plain")]
    ok = pages[0]
    assert ok["title"] == "Fixture <OK> page"
    assert (ok["word_count"], ok["unique_words"], ok["error"]) == (12, 9, None)
    assert ok["worker"] and ok["task_id"] and ok["elapsed_ms"] >= 0

    words = client.get(f"/api/jobs/{job['id']}/words?limit=3").get_json()
    # Largest first, ties by word.
    assert words == [
        {"word": "dog", "count": 2},
        {"word": "plain", "count": 2},
        {"word": "text", "count": 2},
    ]
    with_stopwords = client.get(f"/api/jobs/{job['id']}/words?limit=1&stopwords=include")
    assert with_stopwords.get_json() == [{"word": "the", "count": 3}]


def test_a_word_can_be_looked_up_across_jobs(crawl, client, fixture_site):
    first = crawl([fixture_site.url("/latin1")])
    second = crawl([fixture_site.url("/latin1"), fixture_site.url("/ok")])

    found = client.get("/api/words/CAFÉ").get_json()

    assert found["word"] == "café"
    mine = [p for p in found["pages"] if p["job_id"] in (first["id"], second["id"])]
    assert sorted(p["job_id"] for p in mine) == sorted([first["id"], second["id"]])
    assert all(p["count"] == 1 and p["url"].endswith("/latin1") for p in mine)
    assert found["total"] >= 2


def test_a_page_sent_again_after_it_ended_is_not_counted_twice(crawl, fixture_site, sql):
    job = crawl([fixture_site.url("/ok")])
    page_id = sql("SELECT id FROM pages WHERE job_id = :job", job=job["id"])[0][0]
    before = sql("SELECT count(*), sum(count) FROM word_counts WHERE page_id = :id", id=page_id)
    hits = fixture_site.hits["/ok"]

    duplicate = str(uuid.uuid4())  # a second message for the same page, as a redelivery makes
    enqueue_pages([NewPage(page_id, duplicate, fixture_site.url("/ok"))])
    (result,) = app.AsyncResult(duplicate).get(timeout=20)
    app.AsyncResult(duplicate).forget()  # its row in celery_taskmeta belongs to no page

    assert result["status"] == "not run"
    assert (
        sql("SELECT count(*), sum(count) FROM word_counts WHERE page_id = :id", id=page_id)
        == before
    )
    assert fixture_site.hits["/ok"] == hits
