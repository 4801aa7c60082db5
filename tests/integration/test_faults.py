"""Faults made for real: workers killed, the broker and the database stopped mid-job.

Each test runs a stack of its own (isolated.py): a manager and two workers as real
processes, on a Redis and a PostgreSQL database that no other test uses, or on servers the
test starts itself. The session's workers never see these jobs, and what a test kills or
stops harms no other test.

The workers run with WORDCRAWL_TASK_TIME_LIMIT=6 where a test waits for Redis to hand a
dead worker's unacknowledged messages out again: that happens after the visibility timeout,
3 x the limit (18 s here, 6 minutes by default).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Services, claim_redis_database, release_redis_database
from fixture_site import OK_COUNTS, FixtureSite
from isolated import Stack, new_database_url, running_stack
from processes import node_name, wait_for

from job_manager.demo_site import DemoServer, DemoSite
from job_manager.services import EmbeddedPostgres, EmbeddedRedis, free_port, redis_answers

SHORT_TIME_LIMIT = 6  # seconds: visibility timeout 18 s, soft limit 3 s (pages take ~0.3 s)


def stack_env(
    broker_url: str, database_url: str, ports: list[int], task_time_limit: int = SHORT_TIME_LIMIT
) -> dict[str, str]:
    """The environment of one fault test's manager and workers."""
    return {
        "CELERY_BROKER_URL": broker_url,
        "DATABASE_URL": database_url,
        "WORDCRAWL_ALLOWED_HOSTS": ",".join(f"127.0.0.1:{port}" for port in ports),
        "WORDCRAWL_SUBMISSIONS_PER_MINUTE": "100000",
        "WORDCRAWL_WORKER_CONCURRENCY": "2",
        "WORDCRAWL_TASK_TIME_LIMIT": str(task_time_limit),
        "WORDCRAWL_RECONCILE_SECONDS": "2",
        "WORDCRAWL_READ_TIMEOUT": "2",
        "WORDCRAWL_PAGE_TIMEOUT": "4",
    }


class QuietDemoServer(DemoServer):
    """The demo site, without a traceback when a killed worker hangs up mid-answer."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def slow_site() -> Iterator[DemoServer]:
    """A demo site of 240 pages, each answering after 100 ms: a crawl of several seconds."""
    server = QuietDemoServer(DemoSite(pages=240, fanout=8, words_per_page=300, latency_ms=100))
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def shared_servers_stack(
    services: Services, fixture_site: FixtureSite, tmp_path: Path
) -> Iterator[Callable[..., Stack]]:
    """Make a stack on the session's Redis and PostgreSQL servers, in a Redis database
    number and a PostgreSQL database of its own; its workers may crawl the fixture site
    and the given demo sites."""
    with contextlib.ExitStack() as cleanup:

        def make(task_time_limit: int, *sites: DemoServer, **more_env: str) -> Stack:
            broker_url = claim_redis_database(services.redis_server_url)
            cleanup.callback(release_redis_database, broker_url)
            ports = [fixture_site.server_port] + [site.server_address[1] for site in sites]
            database_url = new_database_url(services.postgres_server_url)
            env = {**stack_env(broker_url, database_url, ports, task_time_limit), **more_env}
            return cleanup.enter_context(running_stack(env, tmp_path / "logs"))

        yield make


def links_job(fixture_site: FixtureSite, pages: int, ms: int) -> str:
    """The seed of a depth-1 job of `pages` pages of the fixture site, each taking `ms`."""
    return fixture_site.url(f"/links?n={pages}&ms={ms}")


def open_pages(stack: Stack, job_id: str) -> int:
    counts = stack.page_counts(job_id)
    return counts.get("queued", 0) + counts.get("running", 0)


def running_on(stack: Stack, job_id: str, name: str) -> list[str]:
    """Return the URLs of the job's pages a worker is running now."""
    rows = stack.sql(
        "SELECT url FROM pages WHERE job_id = :job AND status = 'running' AND worker = :node",
        job=job_id,
        node=node_name(name),
    )
    return [row.url for row in rows]


def kill_worker(stack: Stack, name: str) -> None:
    """SIGKILL a worker and its pool processes at once, as when its machine dies."""
    os.killpg(stack.workers.processes[name].pid, signal.SIGKILL)
    assert stack.workers.stop(name) == -signal.SIGKILL


def word_rows(stack: Stack, job_id: str) -> dict[str, Counter[str]]:
    """Return the word_counts rows of a job's pages, by URL."""
    words: dict[str, Counter[str]] = {}
    for url, word, count in stack.sql(
        "SELECT p.url, w.word, w.count FROM word_counts w JOIN pages p ON p.id = w.page_id "
        "WHERE p.job_id = :job",
        job=job_id,
    ):
        words.setdefault(url, Counter())[word] += count
    return words


def assert_links_job_counted_once(stack: Stack, job: dict, pages: int) -> None:
    """Check that a links_job ended done with every page counted, and counted once."""
    assert job["status"] == "done", job
    assert job["pages"]["done"] == job["pages"]["total"] == pages + 1, job
    words = word_rows(stack, job["id"])
    assert len(words) == pages + 1
    for url, counts in words.items():
        expected = Counter(page=pages) if "/links?" in url else Counter(OK_COUNTS)
        assert counts == expected, url
    rows = stack.sql(
        "SELECT count(*) FROM word_counts w JOIN pages p ON p.id = w.page_id WHERE p.job_id = :j",
        j=job["id"],
    )[0][0]
    assert rows == pages * len(OK_COUNTS) + 1  # no row twice


# Workers killed ---------------------------------------------------------------------------


def test_sigkilled_workers_lose_no_page_and_count_no_word_twice(shared_servers_stack, slow_site):
    stack, site = shared_servers_stack(SHORT_TIME_LIMIT, slow_site), slow_site.site
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    started = time.monotonic()
    job_id = api.submit([slow_site.url], depth=3, max_pages=1000)

    # Kill w1, w2, w1 in turn with SIGKILL (pool processes too), each while it runs a page
    # of the job, and start it again each time.
    for round_, name in enumerate(("w1", "w2", "w1"), start=1):
        wait_for(
            lambda name=name, round_=round_: (
                stack.page_counts(job_id).get("done", 0) >= 20 * round_
                and running_on(stack, job_id, name)
            ),
            30,
            f"{name} runs no page of the job",
            interval=0.05,
        )
        kill_worker(stack, name)
        stack.workers.start(name)
    still_open = open_pages(stack, job_id)

    job = api.wait_for_job(job_id, timeout=60)

    print(f"job ended {time.monotonic() - started:.1f} s after it was submitted")
    assert still_open > 0, "the crawl ended before the kills: make it longer"
    assert job["status"] == "done", job
    # Every page of the site counted, and /private/report refused by robots.txt.
    assert job["pages"] == {
        "total": site.pages + 1,
        "done": site.pages,
        "failed": 1,
        "queued": 0,
        "running": 0,
        "skipped": 0,
    }
    (refused,) = stack.sql(
        "SELECT url, error FROM pages WHERE job_id = :job AND status = 'failed'", job=job_id
    )
    assert tuple(refused) == (slow_site.url + "private/report", "robots_disallowed")
    pages = stack.sql(
        "SELECT url, word_count, attempts FROM pages WHERE job_id = :job AND status = 'done'",
        job=job_id,
    )
    assert len({row.url for row in pages}) == site.pages
    # The kills hit pages while they ran: those were handed out again and ran again.
    assert max(row.attempts for row in pages) >= 2
    words = word_rows(stack, job_id)
    for row in pages:
        expected = site.expected_counts(site.page_number("/" + row.url.removeprefix(slow_site.url)))
        assert words[row.url] == expected, row.url
        assert row.word_count == expected.total()


def test_a_sigkilled_worker_loses_no_page_of_the_group_it_was_crawling(
    shared_servers_stack, fixture_site
):
    # Three pages per message: the killed worker's message comes back whole after the
    # visibility timeout (3 x 2 s = 6 s), and its pages that had ended are not run again.
    stack = shared_servers_stack(2, WORDCRAWL_PAGES_PER_TASK="3")
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    pages = 40
    job_id = api.submit([links_job(fixture_site, pages, ms=150)], depth=1, max_pages=100)
    wait_for(
        lambda: stack.page_counts(job_id).get("done", 0) >= 5 and running_on(stack, job_id, "w1"),
        30,
        "w1 runs no page of the job",
        interval=0.05,
    )
    kill_worker(stack, "w1")
    stack.workers.start("w1")
    assert open_pages(stack, job_id) > 0

    job = api.wait_for_job(job_id, timeout=90)

    assert_links_job_counted_once(stack, job, pages)
    groups = Counter(
        row.task_id for row in stack.sql("SELECT task_id FROM pages WHERE job_id = :j", j=job_id)
    )
    assert max(groups.values()) == 3  # the pages did travel in groups


def test_sigterm_lets_a_worker_finish_its_pages_and_hand_back_the_rest(
    shared_servers_stack, fixture_site
):
    # A long time limit: nothing here may wait for a visibility timeout.
    stack = shared_servers_stack(30)
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    job_id = api.submit([links_job(fixture_site, 16, 1000)], depth=1)
    running = wait_for(
        lambda: running_on(stack, job_id, "w2"), 30, "w2 runs no page", interval=0.05
    )

    code = stack.workers.stop("w2", signal.SIGTERM)  # warm shutdown: waits for its pages

    finished = stack.sql(
        "SELECT status, worker, attempts FROM pages WHERE job_id = :job AND url = ANY(:urls)",
        job=job_id,
        urls=running,
    )
    job = api.wait_for_job(job_id, timeout=60)

    assert code == 0
    # What w2 was running when told to stop, it finished before it exited, once; what
    # it had taken but not started went back to the queue: the job lost nothing.
    assert {tuple(row) for row in finished} == {("done", node_name("w2"), 1)}
    assert_links_job_counted_once(stack, job, 16)


# Redis stopped ----------------------------------------------------------------------------


@pytest.fixture
def own_redis_stack(
    services: Services, fixture_site: FixtureSite, tmp_path: Path
) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    """A stack whose broker is a Redis server of its own (AOF on, as `wordcrawl up`'s)."""
    server = EmbeddedRedis(tmp_path / "redis", free_port())
    server.start()
    env = stack_env(
        server.url, new_database_url(services.postgres_server_url), [fixture_site.server_port]
    )
    try:
        with running_stack(env, tmp_path / "logs") as stack:
            yield stack, server
    finally:
        server.stop()


def restart_redis_mid_job(
    stack: Stack, server: EmbeddedRedis, fixture_site: FixtureSite, keep_data: bool
) -> dict:
    """Stop the broker while a job runs, start it again on its port; return the job."""
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    job_id = api.submit([links_job(fixture_site, 40, 300)], depth=1)
    wait_for(lambda: stack.page_counts(job_id).get("done", 0) >= 8, 30, "no page done")

    server.stop()
    try:
        assert not redis_answers(server.url)
        assert open_pages(stack, job_id) > 0, "the job ended before the broker stopped"
        # The job record is in PostgreSQL: the API still shows the job meanwhile.
        assert api.get(f"/api/jobs/{job_id}").status_code == 200
        if not keep_data:
            shutil.rmtree(server.data_dir)  # every queued and unacknowledged message is gone
    finally:
        server.start()  # on the same port, with the same data folder

    return api.wait_for_job(job_id, timeout=60)


def test_a_job_survives_a_broker_restart(own_redis_stack, fixture_site):
    stack, server = own_redis_stack
    job = restart_redis_mid_job(stack, server, fixture_site, keep_data=True)

    assert_links_job_counted_once(stack, job, 40)


def test_a_job_survives_a_broker_restart_that_lost_every_message(own_redis_stack, fixture_site):
    stack, server = own_redis_stack
    job = restart_redis_mid_job(stack, server, fixture_site, keep_data=False)

    # The reconciler found the open pages nobody held any more and sent them again.
    assert_links_job_counted_once(stack, job, 40)
    assert any("sending" in path.read_text() for path in stack.log_dir.glob("w*.log"))


# PostgreSQL stopped -----------------------------------------------------------------------


@pytest.fixture
def own_postgres_stack(
    services: Services, fixture_site: FixtureSite, tmp_path: Path
) -> Iterator[tuple[Stack, EmbeddedPostgres]]:
    """A stack whose database is on a PostgreSQL server of its own."""
    server = EmbeddedPostgres(tmp_path / "pg" / "data", free_port())
    server.start()
    broker_url = claim_redis_database(services.redis_server_url)
    env = stack_env(broker_url, server.url, [fixture_site.server_port])
    try:
        with running_stack(env, tmp_path / "logs", drop=False) as stack:
            yield stack, server
    finally:
        release_redis_database(broker_url)
        server.stop()
        server.discard()  # its data, and as root the folder made for it


OUTAGE_SECONDS = 3


def all_workers_hit_the_outage(stack: Stack) -> bool:
    """Say whether every worker has logged a failed connection to PostgreSQL."""
    return all(
        "OperationalError" in stack.workers.log_path(name).read_text(errors="replace")
        for name in stack.workers.processes
    )


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["message"]


def test_a_job_survives_a_database_restart_and_the_api_says_503_meanwhile(
    own_postgres_stack, fixture_site
):
    stack, server = own_postgres_stack
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    job_id = api.submit([links_job(fixture_site, 30, 300)], depth=1)
    wait_for(lambda: stack.page_counts(job_id).get("done", 0) >= 6, 30, "no page done")

    server.stop()
    try:
        # Down for a few seconds, long enough for both workers to fail on it and retry;
        # the API answers 503 with the error body all along.
        down_until = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < down_until or not all_workers_hit_the_outage(stack):
            assert_unavailable(api.get(f"/api/jobs/{job_id}"))
            assert_unavailable(api.post("/api/jobs", {"urls": [fixture_site.url("/ok")]}))
            assert_unavailable(api.get("/api/jobs?limit=5"))
            assert time.monotonic() < down_until + 30, "a worker never noticed the outage"
    finally:
        server.start()

    job = api.wait_for_job(job_id, timeout=90)

    assert_links_job_counted_once(stack, job, 30)
    # The submission refused while the database was down left nothing behind.
    assert stack.sql("SELECT count(*) FROM jobs")[0][0] == 1
