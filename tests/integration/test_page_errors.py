"""Each way a page can fail ends it with its documented error code, and nothing else fails.

One job crawls every path of the fixture site at once: the failed pages must not fail
the job's other pages, and the job is `done` because some pages were counted.
"""

from __future__ import annotations

import pytest
from conftest import submit_job, wait_for_job

FAILURES = {
    "/missing": ("http_error", 404),
    "/error": ("http_error", 500),
    "/unavailable": ("http_error", 503),
    "/image": ("unsupported_content_type", None),
    "/big-declared": ("too_large", None),  # refused from its Content-Length
    "/big-chunked": ("too_large", None),  # no Content-Length: counted while reading
    "/secret/page": ("robots_disallowed", None),
    "/loop": ("too_many_redirects", None),
    "/to-loopback": ("blocked_address", None),  # a redirect to 127.0.0.2, not allowed
    "/bad-redirect": ("invalid_url", None),
    "/slow": ("timeout", None),
    "/binary": ("decode_error", None),
}
SUCCESSES = {
    "/ok": "Fixture <OK> page",
    "/redirect": "Fixture <OK> page",  # followed to /ok
    "/gzip": "Fixture <OK> page",  # decompressed
    "/latin1": "Café",
    "/plain": None,  # text/plain has no title
}


@pytest.fixture(scope="module")
def crawled(app, workers, fixture_site, closed_port) -> dict:
    """Crawl every fixture path (and two unreachable hosts) in one job."""
    client = app.test_client()
    urls = [fixture_site.url(path) for path in [*FAILURES, *SUCCESSES]]
    urls.append(f"http://127.0.0.1:{closed_port}/")  # allowed, but nothing listens
    urls.append(f"http://localhost:{fixture_site.server_port}/ok")  # a name not allowed
    job = wait_for_job(client, submit_job(client, urls), timeout=60)
    pages = client.get(f"/api/jobs/{job['id']}/pages").get_json()
    return {"job": job, "pages": {page["url"]: page for page in pages}}


@pytest.mark.parametrize(("path", "expected"), FAILURES.items(), ids=list(FAILURES))
def test_failure_kind_gives_its_error_code(crawled, fixture_site, path, expected):
    page = crawled["pages"][fixture_site.url(path)]

    assert page["status"] == "failed"
    assert (page["error"], page["http_status"]) == expected
    assert page["message"]  # a sentence for the student
    assert page["word_count"] is None


@pytest.mark.parametrize(("path", "title"), SUCCESSES.items(), ids=list(SUCCESSES))
def test_good_pages_of_the_same_job_are_counted(crawled, fixture_site, path, title):
    page = crawled["pages"][fixture_site.url(path)]

    assert (page["status"], page["http_status"], page["title"]) == ("done", 200, title)
    assert page["word_count"] > 0


def test_unreachable_and_refused_hosts(crawled, fixture_site, closed_port):
    closed = crawled["pages"][f"http://127.0.0.1:{closed_port}/"]
    refused = crawled["pages"][f"http://localhost:{fixture_site.server_port}/ok"]

    assert closed["error"] == "connection_error"
    assert refused["error"] == "blocked_address"
    assert "loopback" in refused["message"]


def test_the_job_is_done_because_some_pages_were_counted(crawled):
    job = crawled["job"]

    assert job["status"] == "done"
    assert job["pages"]["done"] == len(SUCCESSES)
    assert job["pages"]["failed"] == len(FAILURES) + 2


def test_a_job_whose_every_page_fails_is_failed(crawl, fixture_site):
    job = crawl([fixture_site.url("/missing"), fixture_site.url("/image")])

    assert job["status"] == "failed"
    assert job["pages"]["failed"] == 2


def test_robots_txt_is_read_once_and_shared_by_all_workers(crawl, fixture_site):
    before = fixture_site.hits["/robots.txt"]

    crawl([fixture_site.url(f"/delay?ms=100&n={n}") for n in range(8)])

    # Cached in Redis by whichever worker asked first (it may already be cached).
    assert fixture_site.hits["/robots.txt"] - before <= 1
