"""A hostile site costs nobody else: each of its tricks ends as docs/reference.md promises.

The site (hostile_site.py) drips a TLS handshake and an HTTP status line for ever, floods
cookies, serves pages built to fill the database, and a robots.txt a first-match parser
misreads. The dripping pages end `timeout` at the page deadline in each pool: the
session's workers (the default pool, threads, where Celery enforces no time limit) and
a prefork worker; another job's page meanwhile ends at once, and no request ever carries
a cookie back. The prefork and threads stacks are stacks of their own (isolated.py), with
a 3 s page deadline, below the 5 s connect timeout that was the TLS handshake's only
bound before.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import Services, claim_redis_database, release_redis_database, wait_for_job
from conftest import submit_job as submit_through_app
from hostile_site import REPEATED, HostileSite, distinct_word
from isolated import Stack, new_database_url, running_stack
from processes import wait_for

pytestmark = pytest.mark.slow  # waits out hostile servers

LATE_S = 1.5  # how much past the deadline a cut page may take to be stored (busy machine)
OWN_PAGE_TIMEOUT = 3  # seconds, WORDCRAWL_PAGE_TIMEOUT of this module's own stacks


class Crawler:
    """Submit jobs and read them back, on the session's workers or on a stack of our own."""

    def __init__(self, page_timeout: float, client=None, stack: Stack | None = None, sql=None):
        self.page_timeout = page_timeout
        self.client, self.stack = client, stack
        self.sql = stack.sql if stack is not None else sql

    def submit(self, urls: list[str]) -> str:
        if self.stack is not None:
            return self.stack.api.submit(urls)
        return submit_through_app(self.client, urls)

    def wait(self, job_id: str, timeout: float = 30) -> dict:
        if self.stack is not None:
            return self.stack.api.wait_for_job(job_id, timeout)
        return wait_for_job(self.client, job_id, timeout)

    def pages(self, job_id: str) -> dict[str, dict]:
        """Return a job's pages by URL, as the API shows them."""
        path = f"/api/jobs/{job_id}/pages"
        if self.stack is not None:
            pages = self.stack.api.get(path).json()
        else:
            pages = self.client.get(path).get_json()
        return {page["url"]: page for page in pages}


@contextlib.contextmanager
def own_stack(
    services: Services, hostile_site: HostileSite, log_dir: Path, **env: str
) -> Iterator[Stack]:
    """A manager and one worker of our own, allowed to crawl the hostile site."""
    broker_url = claim_redis_database(services.redis_server_url)
    try:
        stack_env = {
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": new_database_url(services.postgres_server_url),
            "WORDCRAWL_ALLOWED_HOSTS": ",".join(hostile_site.allowed_hosts),
            "WORDCRAWL_SUBMISSIONS_PER_MINUTE": "100000",
            "WORDCRAWL_PAGE_TIMEOUT": str(OWN_PAGE_TIMEOUT),
            "WORDCRAWL_FETCH_RETRIES": "0",
            "WORDCRAWL_RECONCILE_SECONDS": "2",
            **env,
        }
        with running_stack(stack_env, log_dir) as stack:
            stack.start_manager()
            stack.workers.start("h1")
            yield stack
    finally:
        release_redis_database(broker_url)


@pytest.fixture(scope="module")
def threads_stack(services, hostile_site, tmp_path_factory) -> Iterator[Stack]:
    """A threads-pool worker (4 threads), with the default 5 MB page size."""
    log_dir = tmp_path_factory.mktemp("hostile-threads")
    env = {"WORDCRAWL_WORKER_POOL": "threads", "WORDCRAWL_WORKER_CONCURRENCY": "4"}
    with own_stack(services, hostile_site, log_dir, **env) as stack:
        yield stack


@pytest.fixture(scope="module")
def prefork_stack(services, hostile_site, tmp_path_factory) -> Iterator[Stack]:
    """A prefork worker of 4 processes: one for each page of the test, each alone."""
    log_dir = tmp_path_factory.mktemp("hostile-prefork")
    env = {"WORDCRAWL_WORKER_POOL": "prefork", "WORDCRAWL_WORKER_CONCURRENCY": "4"}
    with own_stack(services, hostile_site, log_dir, **env) as stack:
        yield stack


@pytest.fixture(params=["default", "prefork"])
def crawler(request, worker_env) -> Crawler:
    """Each pool a page can be crawled in, with its page deadline."""
    if request.param == "default":
        request.getfixturevalue("workers")
        client = request.getfixturevalue("app").test_client()
        sql = request.getfixturevalue("sql")
        return Crawler(float(worker_env["WORDCRAWL_PAGE_TIMEOUT"]), client=client, sql=sql)
    stack = request.getfixturevalue(f"{request.param}_stack")
    return Crawler(OWN_PAGE_TIMEOUT, stack=stack)


def test_dripping_servers_end_at_the_page_deadline_and_hold_up_no_other_job(crawler, hostile_site):
    dripping = [hostile_site.tls_url("/"), hostile_site.url("/drip-status")]
    job_id = crawler.submit([*dripping, hostile_site.url("/cookies")])

    def dripping_pages_running() -> bool:
        pages = crawler.pages(job_id)
        return all(pages[url]["status"] == "running" for url in dripping)

    wait_for(dripping_pages_running, 10, "the dripping pages did not start")
    other = crawler.wait(crawler.submit([hostile_site.url("/meanwhile")]), timeout=30)
    job = crawler.wait(job_id, timeout=30)

    pages = crawler.pages(job_id)
    for url in dripping:
        page = pages[url]
        assert (page["status"], page["error"]) == ("failed", "timeout"), page["message"]
        assert "busy" not in page["message"]  # the page's deadline, not a wait for a slot
        deadline_ms = crawler.page_timeout * 1000
        assert deadline_ms <= page["elapsed_ms"] <= deadline_ms + LATE_S * 1000, page
        assert page["worker"]
    assert pages[hostile_site.url("/cookies")]["status"] == "done"
    assert job["status"] == "done"
    # The other job's page ended while the dripping pages were still waiting.
    assert other["status"] == "done"
    ends = {
        row.url: row.finished_at
        for row in crawler.sql(
            "SELECT url, finished_at FROM pages WHERE job_id IN (:a, :b)", a=job_id, b=other["id"]
        )
    }
    assert ends[hostile_site.url("/meanwhile")] < min(ends[url] for url in dripping)
    # Dozens of cookies were set, in every answer; none ever came back.
    assert hostile_site.cookie_headers
    assert set(hostile_site.cookie_headers) == {None}


def test_robots_txt_is_read_as_rfc_9309_says(crawl, client, hostile_site, services):
    expected = {
        "/private/open/page": ("done", None),  # Allow /private/open/ is longer
        "/private/closed": ("failed", "robots_disallowed"),
        "/report.pdf": ("failed", "robots_disallowed"),  # Disallow /*.pdf$
        "/report.pdf?download=1": ("done", None),  # $ ends the path
        "/private/open/report.pdf": ("done", None),  # the longest rule wins: Allow
        "/elsewhere": ("done", None),  # our group, not "*" (Disallow: /)
    }
    job = crawl([hostile_site.url(path) for path in expected])

    pages = {page["url"]: page for page in client.get(f"/api/jobs/{job['id']}/pages").json}
    for path, outcome in expected.items():
        page = pages[hostile_site.url(path)]
        assert (page["status"], page["error"]) == outcome, path
    # Redis keeps our group of it only, re-written, for WORDCRAWL_ROBOTS_CACHE_SECONDS.
    client = redis.Redis.from_url(services.broker_url)
    key = f"wordcrawl:robots-group:http://127.0.0.1:{hostile_site.main.server_port}"
    assert client.get(key) == (
        b"User-agent: *\nDisallow: /private/\nAllow: /private/open/\nDisallow: /*.pdf$\n"
    )
    assert 0 < client.ttl(key) <= 3600


def test_crawl_delay_spaces_a_hosts_requests_across_all_workers(crawl, hostile_site, services):
    job = crawl([hostile_site.paced_url(f"/page{n}") for n in range(4)])

    assert job["status"] == "done"
    starts = sorted(at for path, at in hostile_site.paced.requests if path != "/robots.txt")
    assert len(starts) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.95, gaps  # Crawl-delay: 1, on Redis's clock
    client = redis.Redis.from_url(services.broker_url)
    key = f"wordcrawl:robots-group:http://127.0.0.1:{hostile_site.paced.server_port}"
    assert client.get(key) == b"User-agent: *\nCrawl-delay: 1\n"


def test_every_key_of_robots_and_politeness_expires(crawl, hostile_site, services):
    crawl([hostile_site.url("/expiring")])
    client = redis.Redis.from_url(services.broker_url)

    keys = [*client.scan_iter("wordcrawl:robots-group:*"), *client.scan_iter("wordcrawl:host:*")]

    assert keys
    for key in keys:
        assert client.pttl(key) > 0, key
        assert client.memory_usage(key) < 20_000, key


# Storage per page, on the threads stack (its pages may be 5 MB, the default).


def test_pages_built_to_fill_the_database_are_stored_within_bounds(threads_stack, hostile_site):
    crawler = Crawler(OWN_PAGE_TIMEOUT, stack=threads_stack)
    flood, token, title = (
        hostile_site.url("/distinct-words?n=600000"),
        hostile_site.url("/long-token?letters=5000"),
        hostile_site.url("/long-title?letters=100000"),
    )

    job = crawler.wait(crawler.submit([flood, token, title]), timeout=90)

    assert job["status"] == "done"
    pages = crawler.pages(job["id"])
    assert all(page["status"] == "done" for page in pages.values()), pages
    # 600,000 distinct words: all counted, the 10,000 most frequent stored.
    page = pages[flood]
    assert (page["word_count"], page["unique_words"]) == (600_000 + REPEATED, 600_000)
    assert "590,000" in page["message"]
    rows = stored_words(threads_stack, job["id"], flood)
    assert len(rows) == 10_000
    twice = {word for word, count in rows.items() if count == 2}
    assert twice == {distinct_word(600_000 - 1 - n) for n in range(REPEATED)}
    assert max(word for word, count in rows.items() if count == 1) == distinct_word(9_999 - 20)
    # A 5,000-letter token is no word; the words around it are.
    assert stored_words(threads_stack, job["id"], token) == {"before": 1, "after": 1}
    assert pages[token]["message"] is None
    # A 100,000-letter title is kept to its first 200.
    assert pages[title]["title"] == "t" * 200


def stored_words(stack: Stack, job_id: str, url: str) -> dict[str, int]:
    rows = stack.sql(
        "SELECT w.word, w.count FROM word_counts w JOIN pages p ON p.id = w.page_id "
        "WHERE p.job_id = :job AND p.url = :url",
        job=job_id,
        url=url,
    )
    return {row.word: row.count for row in rows}
