"""Housekeeping: `wordcrawl prune` and Celery's result expiry, against the real database.

Old jobs are made by inserting rows and back-dating them (or by a real crawl, back-dated);
prune must remove them with every row they left and leave no orphan, touch nothing recent
or open, work in bounded batches, and never wait for a crawl's open transaction.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import as_owner, submit_job, wait_for_job
from sqlalchemy import text

import job_tasks
from job_tasks.storing import db as job_db
from job_tasks.storing.prune import PruneReport, prune

pytestmark = pytest.mark.slow  # runs `wordcrawl prune` on crawls of its own

WORDCRAWL = Path(sys.executable).with_name("wordcrawl")
WORDS_PER_PAGE = 5

# Rows whose parent is gone: what a prune must never leave behind. Each test compares the
# counts before and after, as the session's other tests may leave a Celery row no page names.
ORPHANS = """
SELECT (SELECT count(*) FROM job_urls u
         WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = u.job_id)),
       (SELECT count(*) FROM pages p
         WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = p.job_id)),
       (SELECT count(*) FROM word_counts w
         WHERE NOT EXISTS (SELECT 1 FROM pages p WHERE p.id = w.page_id)),
       (SELECT count(*) FROM celery_taskmeta t WHERE t.name = 'job_tasks.tasks.crawl_pages'
         AND NOT EXISTS (SELECT 1 FROM pages p WHERE p.task_id = t.task_id)
         AND NOT EXISTS (SELECT 1 FROM page_attempts a WHERE a.task_id = t.task_id))
"""


@pytest.fixture
def engine(services):
    return job_db.get_engine(services.database_url)


def make_job(
    engine,
    status: str = "done",
    days_ago: float = 40,
    pages: int = 3,
    open_pages: int = 0,
    schedule_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Insert a job that ended `days_ago` days ago, with seed URLs, pages, word counts and
    Celery results; `open_pages` of its pages are still running."""
    job_id = uuid.uuid4()
    ended = f"now() - make_interval(secs => {days_ago * 86400})"
    finished = "NULL" if status in ("queued", "running") else ended
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, status, depth, max_pages, created_at, started_at,"
                f" finished_at, schedule_id) VALUES (:id, :status, 0, 1000, {ended}, {ended},"
                f" {finished}, :schedule)"
            ),
            {"id": job_id, "status": status, "schedule": schedule_id},
        )
        conn.execute(
            text(
                "INSERT INTO job_urls (job_id, position, url)"
                " SELECT :id, n, 'http://example.test/' || n FROM generate_series(0, 1) n"
            ),
            {"id": job_id},
        )
        conn.execute(
            text(
                "INSERT INTO pages"
                " (job_id, url, depth, status, task_id, queued_at, started_at, finished_at)"
                " SELECT :id, 'http://example.test/p/' || n, 0,"
                "   CASE WHEN n < :open THEN 'running' ELSE 'done' END,"
                f"  gen_random_uuid()::text, {ended},"
                # An open page's start ahead of the clock keeps the test workers'
                # reconciler, which ends open pages that no message stands for, off it.
                f"  CASE WHEN n < :open THEN now() + interval '1 hour' ELSE {ended} END,"
                f"  CASE WHEN n < :open THEN NULL ELSE {ended} END"
                " FROM generate_series(0, :pages - 1) n"
            ),
            {"id": job_id, "pages": pages, "open": open_pages},
        )
        conn.execute(
            text(
                "INSERT INTO word_counts (page_id, word, count)"
                " SELECT p.id, 'word' || n, n FROM pages p, generate_series(1, :words) n"
                " WHERE p.job_id = :id"
            ),
            {"id": job_id, "words": WORDS_PER_PAGE},
        )
        conn.execute(
            text(
                "INSERT INTO celery_taskmeta (id, task_id, status, name, date_done)"
                " SELECT nextval('task_id_sequence'), p.task_id, 'SUCCESS',"
                f"  'job_tasks.tasks.crawl_pages', ({ended})::timestamp"
                " FROM pages p WHERE p.job_id = :id"
            ),
            {"id": job_id},
        )
    return job_id


def backdate(engine, job_id, days: int) -> None:
    """Make a job look as if it had ended `days` days ago."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET finished_at = now() - make_interval(days => :days) WHERE id = :job"
            ),
            {"job": job_id, "days": days},
        )


def rows_of(sql, job_id) -> tuple[int, int, int, int, int]:
    """How many rows of each table belong to a job: jobs, job_urls, pages, words, results."""
    return tuple(
        sql(
            "SELECT (SELECT count(*) FROM jobs WHERE id = :job),"
            " (SELECT count(*) FROM job_urls WHERE job_id = :job),"
            " (SELECT count(*) FROM pages WHERE job_id = :job),"
            " (SELECT count(*) FROM word_counts w JOIN pages p ON p.id = w.page_id"
            "   WHERE p.job_id = :job),"
            " (SELECT count(*) FROM celery_taskmeta t JOIN pages p ON p.task_id = t.task_id"
            "   WHERE p.job_id = :job)",
            job=job_id,
        )[0]
    )


def run_cli(services, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # lock_timeout: a prune that had to wait for another transaction's lock fails at once
    # instead of hanging, so "never blocked" is something the test can see.
    env = {**os.environ, **services.env, "PGOPTIONS": "-c lock_timeout=5s"}
    return subprocess.run(
        [str(WORDCRAWL), "prune", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_prune_removes_old_ended_jobs_with_all_their_rows_and_leaves_the_rest(
    services, engine, sql
):
    orphans = sql(ORPHANS)[0]
    schedule = uuid.uuid4()
    old = [
        make_job(engine, "done", pages=7),
        make_job(engine, "failed", pages=2),
        make_job(engine, "cancelled", pages=0),
        make_job(engine, "done", pages=3, schedule_id=schedule),  # an old scheduled run
    ]
    kept = {
        "recent": make_job(engine, "done", days_ago=2),
        "running": make_job(engine, "running", days_ago=90, open_pages=2),
        "queued": make_job(engine, "queued", days_ago=90, open_pages=3),
        # Cancelled long ago, but a worker is still on one of its pages.
        "page still running": make_job(engine, "cancelled", days_ago=90, open_pages=1),
    }
    kept_rows = {name: rows_of(sql, job) for name, job in kept.items()}
    schedules_before = _schedules(sql)

    result = run_cli(services, "--older-than", "30", "--batch-size", "2")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(
        "removed 4 jobs, 8 seed URLs, 12 pages, 60 word counts, 12 Celery results"
    )
    for job in old:
        assert rows_of(sql, job) == (0, 0, 0, 0, 0)
    assert {name: rows_of(sql, job) for name, job in kept.items()} == kept_rows
    assert sql(ORPHANS)[0] == orphans  # none added
    assert _schedules(sql) == schedules_before  # runs go, schedules stay


def test_a_real_crawl_is_pruned_with_its_celery_results(services, engine, sql, crawl, demo_site):
    orphans = sql(ORPHANS)[0]
    base = f"http://127.0.0.1:{demo_site.server_address[1]}"
    job = crawl([f"{base}/", f"{base}/page/1"])
    job_id = uuid.UUID(job["id"])
    before = rows_of(sql, job_id)
    assert before[2] == 2 and before[3] > 0 and before[4] == 2  # pages, words, results
    backdate(engine, job_id, days=8)

    report = prune(engine, 7)

    assert (report.jobs, report.job_urls, report.pages) == (1, 2, 2)
    assert (report.word_counts, report.task_results) == (before[3], 2)
    assert rows_of(sql, job_id) == (0, 0, 0, 0, 0)
    assert sql(ORPHANS)[0] == orphans  # none added


def test_a_retried_page_goes_with_the_celery_results_of_its_earlier_task(
    engine, sql, client, workers, fixture_site
):
    orphans = sql(ORPHANS)[0]
    # A page that fails every try, then is queued again by hand (dead letters) and counted:
    # two Celery tasks, the failed one known only from the page's attempt history.
    tries = 1 + workers.settings.fetch_retries
    flaky = fixture_site.url(f"/flaky?key={uuid.uuid4().hex}&fail={tries}")
    job_id = submit_job(client, [flaky])
    assert wait_for_job(client, job_id)["pages"]["failed"] == 1
    retry = client.post(f"/api/jobs/{job_id}/retry", json={}, headers=as_owner(job_id))
    assert retry.status_code == 202
    assert wait_for_job(client, job_id)["pages"]["done"] == 1
    backdate(engine, job_id, days=8)

    report = prune(engine, 7)

    assert (report.jobs, report.pages, report.task_results) == (1, 1, 2)
    assert rows_of(sql, job_id) == (0, 0, 0, 0, 0)
    assert (
        sql("SELECT count(*) FROM page_attempts")[0][0]
        == sql("SELECT count(*) FROM page_attempts a JOIN pages p ON p.id = a.page_id")[0][0]
    )
    assert sql(ORPHANS)[0] == orphans  # none added


def test_a_dry_run_counts_and_removes_nothing(services, engine, sql):
    old = [make_job(engine, "done", pages=4), make_job(engine, "failed", pages=1)]
    recent = make_job(engine, "done", days_ago=1, pages=4)
    before = [rows_of(sql, job) for job in (*old, recent)]

    report = prune(engine, 30, dry_run=True)
    result = run_cli(services, "--older-than", "30", "--dry-run")

    assert report.counts() == PruneReport(2, 4, 5, 25, 5).counts()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "would remove 2 jobs, 4 seed URLs, 5 pages, 25 word counts, 5 Celery results"
    )
    assert [rows_of(sql, job) for job in (*old, recent)] == before
    prune(engine, 30)  # leave no old job for the next test
    assert [rows_of(sql, job)[0] for job in old] == [0, 0]


def test_a_big_job_goes_in_transactions_of_at_most_one_batch(services, engine, sql):
    job = make_job(engine, "done", pages=120)

    report = prune(engine, 30, batch_size=50)

    assert report.pages == 120 and report.jobs == 1
    assert report.largest_batch == 50
    # Three batches of pages (50, 50, 20), then the seed URLs and the job row.
    assert report.transactions == 4
    assert rows_of(sql, job) == (0, 0, 0, 0, 0)


def test_prune_is_not_blocked_by_a_crawl_holding_its_transaction_open(services, engine, sql):
    """A worker's transaction (its job row locked, pages, words and its Celery row written)
    stays open while the real CLI prunes other jobs; prune takes no lock it would wait on."""
    running = make_job(engine, "running", days_ago=60, pages=3, open_pages=3)
    old = make_job(engine, "done", pages=5)
    worker = engine.connect()
    try:
        tx = worker.begin()
        params = {"job": running}
        worker.execute(text("SELECT 1 FROM jobs WHERE id = :job FOR UPDATE"), params)
        page_id, task_id = worker.execute(
            text(
                "UPDATE pages SET status = 'done', finished_at = now() WHERE id ="
                " (SELECT min(id) FROM pages WHERE job_id = :job) RETURNING id, task_id"
            ),
            params,
        ).one()
        worker.execute(
            text("INSERT INTO word_counts (page_id, word, count) VALUES (:page, 'fresh', 1)"),
            {"page": page_id},
        )
        worker.execute(
            text(
                "INSERT INTO pages (job_id, url, depth, status) VALUES (:job, 'http://x/', 1,"
                " 'queued')"
            ),
            params,
        )
        worker.execute(
            text("UPDATE celery_taskmeta SET status = 'STARTED' WHERE task_id = :task"),
            {"task": task_id},
        )

        result = run_cli(services, "--older-than", "30", timeout=30)

        assert result.returncode == 0, result.stderr
        assert rows_of(sql, old) == (0, 0, 0, 0, 0)
        tx.commit()
    finally:
        worker.close()
    assert rows_of(sql, running)[:4] == (1, 2, 4, 3 * WORDS_PER_PAGE + 1)


def test_days_must_be_a_whole_number_of_at_least_zero(services):
    result = run_cli(services, "--older-than", "-1")

    assert result.returncode == 2
    assert "--older-than" in result.stderr and "-1" in result.stderr


def test_celerys_backend_cleanup_removes_expired_results_on_a_real_worker(services, sql, workers):
    """What beat's daily celery.backend_cleanup does: results older than
    WORDCRAWL_RESULT_EXPIRES_DAYS (7 by default) go, newer ones stay."""
    expired, fresh = f"expired-{uuid.uuid4()}", f"fresh-{uuid.uuid4()}"
    with job_db.get_engine(services.database_url).begin() as conn:
        for task_id, days in ((expired, 8), (fresh, 6)):
            conn.execute(
                text(
                    "INSERT INTO celery_taskmeta (id, task_id, status, date_done) VALUES"
                    " (nextval('task_id_sequence'), :task, 'SUCCESS',"
                    "  (now() - make_interval(days => :days))::timestamp)"
                ),
                {"task": task_id, "days": days},
            )

    result = job_tasks.app.send_task("celery.backend_cleanup")
    result.get(timeout=30)

    remaining = sql(
        "SELECT task_id FROM celery_taskmeta WHERE task_id IN (:a, :b)", a=expired, b=fresh
    )
    assert [row.task_id for row in remaining] == [fresh]
    queue = sql("SELECT queue FROM celery_taskmeta WHERE task_id = :t", t=result.id)
    assert queue[0].queue == "housekeeping"


def _schedules(sql) -> int | None:
    """How many schedules there are, if the schedules table exists."""
    if sql("SELECT to_regclass('schedules')")[0][0] is None:
        return None
    return sql("SELECT count(*) FROM schedules")[0][0]
