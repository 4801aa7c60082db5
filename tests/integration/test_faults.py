"""Faults made for real: workers killed or paused, the broker and the database stopped mid-job.

Each test runs a stack of its own (isolated.py): a manager and two workers as real
processes, on a Redis and a PostgreSQL database that no other test uses, or on servers the
test starts itself. The session's workers never see these jobs, and what a test kills or
stops harms no other test.

The workers keep the default task time limit, so the broker's visibility timeout (3 x the
limit: 6 minutes) is never what brings a page back: a dead worker's pages are sent again
by the upkeep, once the census no longer counts it alive, every WORDCRAWL_RECONCILE_SECONDS
(2 s here). They run at the default pool and grouping (pages travel alone unless a job
has more waiting than free messages), and with prefork where the pool matters.
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

from wordcrawl.demo_site import DemoServer, DemoSite
from wordcrawl.local.services import EmbeddedPostgres, EmbeddedRedis, free_port, redis_answers

pytestmark = pytest.mark.slow  # kills, pauses and restarts workers and servers

RECONCILE_SECONDS = 2
# How much later than 2 x the reconcile period plus the page's own time a killed worker's
# pages may end here: processes starting their next page on a busy machine of 2 cores.
SLACK_SECONDS = 5
# Four messages of three pages each for a job of 12 pages: a job with 4 free messages and
# more pages waiting spreads them over its messages (storing/pages.py, "Fair sharing").
GROUPED = {"WORDCRAWL_JOB_TASKS_IN_BROKER": "4"}


def stack_env(broker_url: str, database_url: str, ports: list[int]) -> dict[str, str]:
    """The environment of one fault test's manager and workers."""
    return {
        "CELERY_BROKER_URL": broker_url,
        "DATABASE_URL": database_url,
        "WORDCRAWL_ALLOWED_HOSTS": ",".join(f"127.0.0.1:{port}" for port in ports),
        "WORDCRAWL_SUBMISSIONS_PER_MINUTE": "100000",
        "WORDCRAWL_WORKER_CONCURRENCY": "2",
        "WORDCRAWL_RECONCILE_SECONDS": str(RECONCILE_SECONDS),
        "WORDCRAWL_READ_TIMEOUT": "3",
        "WORDCRAWL_PAGE_TIMEOUT": "4",
        # A killed worker's slots at a host last as long as a task may (2 minutes): let
        # them not slow the other workers down here.
        "WORDCRAWL_PER_HOST_CONCURRENCY": "100",
    }


class QuietDemoServer(DemoServer):
    """The demo site, without a traceback when a killed worker hangs up mid-answer."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def slow_site() -> Iterator[DemoServer]:
    """A demo site of 240 pages, each answering after 1 s: a crawl of several seconds, even
    with two workers' tasks of up to 16 pages each in flight."""
    server = QuietDemoServer(DemoSite(pages=240, fanout=8, words_per_page=300, latency_ms=1000))
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

        def make(*sites: DemoServer, **more_env: str) -> Stack:
            broker_url = claim_redis_database(services.redis_server_url)
            cleanup.callback(release_redis_database, broker_url)
            ports = [fixture_site.server_port] + [site.server_address[1] for site in sites]
            database_url = new_database_url(services.postgres_server_url)
            env = {**stack_env(broker_url, database_url, ports), **more_env}
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


# Workers killed or paused ----------------------------------------------------------------

PAGE_MS = 1500  # each page of the jobs below: long enough to kill or pause a worker mid-page


def pages_of(stack: Stack, job_id: str, urls: list[str]) -> list:
    """Return how the job's pages at these URLs stand now."""
    return stack.sql(
        "SELECT id, url, status, worker, attempts, task_id, finished_at FROM pages "
        "WHERE job_id = :job AND url = ANY(:urls)",
        job=job_id,
        urls=urls,
    )


@pytest.mark.parametrize(
    ("pool", "per_task"),
    [
        pytest.param("threads", 1, id="threads"),
        pytest.param("prefork", 1, id="prefork"),
        pytest.param("threads", 3, id="threads-grouped"),
    ],
)
def test_a_killed_workers_pages_run_again_within_two_reconcile_periods(
    shared_servers_stack, fixture_site, pool, per_task
):
    grouping = GROUPED if per_task > 1 else {}
    stack = shared_servers_stack(WORDCRAWL_WORKER_POOL=pool, **grouping)
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    pages = 4 * per_task  # as many as the two workers take at once (two tasks each)
    job_id = api.submit([links_job(fixture_site, pages, PAGE_MS)], depth=1)
    killed = wait_for(
        lambda: running_on(stack, job_id, "w1"), 30, "w1 runs no page of the job", interval=0.05
    )

    kill_worker(stack, "w1")
    died = time.monotonic()
    job = api.wait_for_job(job_id, timeout=60)
    recovery = time.monotonic() - died

    print(f"{pool}, {per_task} per task: the job ended {recovery:.1f} s after w1 died")
    assert_links_job_counted_once(stack, job, pages)
    # w1's pages were sent again once the census forgot it (one period), by the next
    # upkeep (another), and ran again on w2: not after the visibility timeout (6 min).
    assert recovery <= 2 * RECONCILE_SECONDS + PAGE_MS / 1000 + SLACK_SECONDS
    assert {(row.worker, row.attempts) for row in pages_of(stack, job_id, killed)} == {
        (node_name("w2"), 2)
    }
    # w2 kept reporting while it crawled: none of its own pages was run twice.
    others = stack.sql(
        "SELECT max(attempts) FROM pages WHERE job_id = :job AND url <> ALL(:urls)",
        job=job_id,
        urls=killed,
    )
    assert others[0][0] == 1


def test_a_worker_killed_and_restarted_takes_back_its_pages_and_counts_no_word_twice(
    shared_servers_stack, slow_site
):
    # The census remembers a silent worker for 30 s here, far longer than w1 takes to
    # start again: what sends its pages again is w1 itself, under the same name.
    # Its pages are found faster than they are crawled: they travel in groups.
    stack = shared_servers_stack(slow_site, WORDCRAWL_RECONCILE_SECONDS="30")
    site = slow_site.site
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    job_id = api.submit([slow_site.url], depth=3, max_pages=1000)
    killed = wait_for(
        lambda: stack.page_counts(job_id).get("done", 0) >= 20 and running_on(stack, job_id, "w1"),
        30,
        "w1 runs no page of the job",
        interval=0.05,
    )

    kill_worker(stack, "w1")
    still_open = open_pages(stack, job_id)
    stack.workers.start("w1")
    # A message w1 had taken but not yet started when it was killed is not "running"
    # under its name: the upkeep takes it back, within two of its 30 s periods.
    job = api.wait_for_job(job_id, timeout=2 * 30 + 15)

    assert still_open > 0, "the crawl ended before the kill: make it longer"
    assert "pages this worker's last run left" in stack.workers.log_path("w1").read_text()
    assert {row.attempts for row in pages_of(stack, job_id, killed)} == {2}
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
        "SELECT url, word_count FROM pages WHERE job_id = :job AND status = 'done'", job=job_id
    )
    assert len({row.url for row in pages}) == site.pages
    words = word_rows(stack, job_id)
    for row in pages:
        expected = site.expected_counts(site.page_number("/" + row.url.removeprefix(slow_site.url)))
        assert words[row.url] == expected, row.url
        assert row.word_count == expected.total()


def test_a_paused_worker_cannot_end_the_pages_another_run_took_over(
    shared_servers_stack, fixture_site
):
    # w1 is stopped (SIGSTOP) mid-page for longer than the census remembers a silent
    # worker: its pages are sent again and w2 runs them. w1 is resumed while w2 runs
    # them, and ends its own run of those pages: the page's end must be w2's.
    page_ms = 3000  # w2's run of a page outlasts w1's resumed run by far
    # Pages in groups of three (GROUPED): a run overtaken for some pages of its message.
    stack = shared_servers_stack(WORDCRAWL_READ_TIMEOUT="5", WORDCRAWL_PAGE_TIMEOUT="6", **GROUPED)
    stack.workers.start("w1", "w2")
    api = stack.start_manager()
    pages = 12
    job_id = api.submit([links_job(fixture_site, pages, page_ms)], depth=1)
    # The slow pages (the links of the seed), not the seed itself, which ends at once.
    paused = wait_for(
        lambda: [url for url in running_on(stack, job_id, "w1") if "/delay" in url],
        30,
        "w1 runs no slow page of the job",
        interval=0.05,
    )
    old_tasks = {row.task_id for row in pages_of(stack, job_id, paused)}

    w1 = stack.workers.processes["w1"].pid
    os.killpg(w1, signal.SIGSTOP)
    try:
        wait_for(
            lambda: any(row.worker == node_name("w2") for row in pages_of(stack, job_id, paused)),
            30,
            "w2 did not take over the paused worker's pages",
            interval=0.05,
        )
    finally:
        os.killpg(w1, signal.SIGCONT)
    celery = stack.workers.celery
    wait_for(
        lambda: all(celery.AsyncResult(task_id).ready() for task_id in old_tasks),
        30,
        "w1 did not end its run of the pages after it was resumed",
        interval=0.1,
    )
    job = api.wait_for_job(job_id, timeout=60)

    assert_links_job_counted_once(stack, job, pages)
    rows = pages_of(stack, job_id, paused)
    # Each of those pages was ended by its second run: w2's, or, for a page whose new
    # message was still waiting when w1 woke up, w1's new run (alive again, it may take it).
    assert {(row.status, row.attempts) for row in rows} == {("done", 2)}
    assert node_name("w2") in {row.worker for row in rows}
    # w1's run ended those pages its own way (counted, or out of time meanwhile), and
    # its writes were refused: it says so, and no attempt of it is in the pages' history.
    ids = {row.id for row in rows}
    results = [celery.AsyncResult(task_id).get(timeout=10) for task_id in old_tasks]
    mine = [page for result in results for page in result if page["page_id"] in ids]
    assert {page["status"] for page in mine} == {"not stored: another run has it"}
    assert len(mine) == len(ids)
    assert not stack.sql("SELECT * FROM page_attempts WHERE page_id = ANY(:ids)", ids=list(ids))
    # That the refusal is the claim token's, even while the page is still running, is
    # shown without timing in test_reliability.py.


def test_sigterm_lets_a_worker_finish_its_pages_and_hand_back_the_rest(
    shared_servers_stack, fixture_site
):
    stack = shared_servers_stack()
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


def test_the_soft_time_limit_keeps_the_pages_counted_and_times_out_the_rest(
    shared_servers_stack, fixture_site
):
    # A short task time limit (soft limit 4 s) below the pages' own deadline (12 s): the
    # soft limit, not the fetch, ends the slow page (prefork; the threads pool has no
    # time limits, and the task bounds its own wait there).
    stack = shared_servers_stack(
        WORDCRAWL_WORKER_POOL="prefork",
        WORDCRAWL_TASK_TIME_LIMIT="8",
        WORDCRAWL_PAGE_TIMEOUT="12",
        WORDCRAWL_READ_TIMEOUT="10",
    )
    stack.workers.start("w1")
    api = stack.start_manager()
    urls = [fixture_site.url("/ok?limits"), fixture_site.url("/delay?ms=6000&limits")]
    job = api.wait_for_job(api.submit(urls), timeout=60)

    assert job["status"] == "done"
    pages = {
        row.url: row
        for row in stack.sql(
            "SELECT url, status, error, message, task_id FROM pages WHERE job_id = :job",
            job=job["id"],
        )
    }
    assert (pages[urls[0]].status, pages[urls[0]].error) == ("done", None)
    assert (pages[urls[1]].status, pages[urls[1]].error) == ("failed", "timeout")
    assert "time limit" in pages[urls[1]].message
    # Two pages, fewer than the job's free messages: each alone; neither was retried.
    assert len({page.task_id for page in pages.values()}) == 2
    assert not stack.sql(
        "SELECT * FROM page_attempts a JOIN pages p ON p.id = a.page_id "
        "WHERE p.job_id = :job AND a.outcome = 'retried'",
        job=job["id"],
    )


# Redis stopped ----------------------------------------------------------------------------


@pytest.fixture
def own_redis_stack(
    services: Services, fixture_site: FixtureSite, tmp_path: Path
) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    """A stack whose broker is a Redis server of its own (AOF on, as `wordcrawl up`'s)."""
    server = EmbeddedRedis(tmp_path / "redis", free_port())
    server.start()
    database_url = new_database_url(services.postgres_server_url)
    env = stack_env(server.url, database_url, [fixture_site.server_port])
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

    # The upkeep found the open pages nobody held any more and sent them again.
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
