"""Crawling: a counted page's links become pages of its job, by depth, up to max_pages.

The demo site is a tree of linked pages with the traps of a real site (a #fragment link,
another host, mailto:, a robots.txt-disallowed path), so the exact set of pages a crawl
must reach can be computed from the site itself and compared with what the workers did.
"""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import PER_HOST_CONCURRENCY, as_owner, submit_job, wait_for_job
from processes import wait_for

from job_tasks.settings import get_settings
from job_tasks.urls import same_host_link


def expected_pages(server, depth: int) -> dict[str, int]:
    """Breadth-first over the demo site's links: each URL with the depth it is found at."""
    site, root = server.site, server.url
    found = {root: 0}
    frontier = [root]
    for level in range(1, depth + 1):
        next_frontier = []
        for url in frontier:
            n = site.page_number("/" + url.removeprefix(root))
            if n is None:  # a page that is not counted (the robots-disallowed one)
                continue
            for href, _text in site.links(n):
                link = same_host_link(url, href)
                if link and link not in found:
                    found[link] = level
                    next_frontier.append(link)
        frontier = next_frontier
    return found


def test_depth_2_crawl_reaches_exactly_the_linked_pages_once(crawl, demo_site, sql):
    job = crawl([demo_site.url], depth=2, max_pages=1000, timeout=60)

    rows = sql("SELECT url, depth, status, error FROM pages WHERE job_id = :job", job=job["id"])
    expected = expected_pages(demo_site, depth=2)
    assert {row.url: row.depth for row in rows} == expected  # no duplicate, no other host
    assert not any("#" in row.url or row.url.startswith("mailto:") for row in rows)
    private = demo_site.url + "private/report"
    by_url = {row.url: row for row in rows}
    assert (by_url[private].status, by_url[private].error) == ("failed", "robots_disallowed")
    assert Counter(row.status for row in rows) == {"done": len(expected) - 1, "failed": 1}
    assert job["status"] == "done"
    assert job["pages"]["total"] == len(expected)


def test_the_counts_of_crawled_pages_follow_the_word_rules(crawl, demo_site, sql):
    job = crawl([demo_site.url + "page/3"], depth=1, timeout=60)

    rows = sql(
        "SELECT p.url, sum(w.count) AS words, count(w.word) AS unique_words "
        "FROM pages p JOIN word_counts w ON w.page_id = p.id "
        "WHERE p.job_id = :job GROUP BY p.url",
        job=job["id"],
    )
    assert len(rows) == job["pages"]["done"] > 1
    for row in rows:
        expected = demo_site.site.expected_counts(
            demo_site.site.page_number("/" + row.url.removeprefix(demo_site.url))
        )
        assert (row.words, row.unique_words) == (expected.total(), len(expected))


def test_max_pages_caps_a_crawl_exactly(crawl, demo_site, sql):
    job = crawl([demo_site.url], depth=3, max_pages=7, timeout=60)

    assert job["status"] == "done"
    assert job["pages"]["total"] == 7
    (count,) = sql("SELECT count(*) FROM pages WHERE job_id = :job", job=job["id"])[0]
    assert count == 7


def test_links_of_a_cancelled_crawl_are_not_followed(client, workers, fixture_site, sql):
    fetched_before = fixture_site.hits["/delay"]
    # Each linked page takes 0.8 s, less than the test workers' read timeout.
    job_id = submit_job(client, [fixture_site.url("/links?n=30&ms=800")], depth=1)

    def some_running() -> bool:
        return client.get(f"/api/jobs/{job_id}").get_json()["pages"]["running"] >= 2

    wait_for(some_running, 30, "the crawl did not start its linked pages")
    assert client.delete(f"/api/jobs/{job_id}", headers=as_owner(job_id)).status_code == 200
    job = wait_for_job(client, job_id, timeout=30)

    assert job["status"] == "cancelled"
    assert job["pages"]["total"] == 31  # the seed and its 30 links
    # All but the few the 4 worker slots had taken: 30 links are more than the job's free
    # messages, so they travel in groups (up to Settings.group_size pages each).
    assert job["pages"]["skipped"] >= 30 - 4 * get_settings().group_size
    (started,) = sql(
        "SELECT count(*) FROM pages WHERE job_id = :job AND status <> 'skipped'", job=job_id
    )[0]
    # No skipped page was ever fetched: the site saw at most the linked pages that started.
    assert fixture_site.hits["/delay"] - fetched_before <= started - 1


@pytest.mark.slow
def test_requests_to_one_host_are_limited_across_all_workers(crawl, fixture_site):
    # Requests other tests left behind (a worker may give up before the site answers).
    wait_for(lambda: fixture_site.in_flight == 0, 10, "the fixture site is still busy")
    fixture_site.most_in_flight = 0

    # 4 worker processes in all could fetch 4 pages of this host at once.
    job = crawl([fixture_site.url(f"/delay?ms=400&host-limit={n}") for n in range(10)])

    assert job["status"] == "done"
    assert 2 <= fixture_site.most_in_flight <= PER_HOST_CONCURRENCY


@pytest.mark.slow
def test_jobs_whose_last_pages_end_together_each_end_once(client, workers, fixture_site, sql):
    # Each job's two pages take as long and run side by side, so its last two pages
    # often end at the same moment on two workers: the job must still end, exactly done.
    job_ids = [
        submit_job(client, [fixture_site.url(f"/delay?ms=200&job={j}&n={n}") for n in (1, 2)])
        for j in range(8)
    ]

    jobs = [wait_for_job(client, job_id, timeout=60) for job_id in job_ids]

    assert [job["status"] for job in jobs] == ["done"] * 8
    assert all(job["pages"]["done"] == 2 and job["finished_at"] for job in jobs)
    rows = sql(
        "SELECT count(*) FROM jobs j WHERE j.id = ANY(CAST(:ids AS uuid[])) "
        "AND j.finished_at >= (SELECT max(p.finished_at) FROM pages p WHERE p.job_id = j.id)",
        ids=job_ids,
    )
    assert rows[0][0] == 8  # each ended after its last page, not before
