"""Remove old jobs and every row they left: the housekeeping end of the flow.

`wordcrawl prune --older-than DAYS` calls `prune`, which needs only an engine, so it could
run as a housekeeping task too. A job is removed when it has ended (done, failed or
cancelled), no page of it is still queued or running, and it ended (`finished_at`, else
`created_at`) more than DAYS ago. Its pages go first, in short transactions of at most
`batch_size` pages, each with the pages' word counts, their Celery results (joined by
`pages.task_id`) and any row that cascades from pages; then its seed URLs and the job row.
A removal cut short leaves a job with fewer pages, never a row whose job is gone.

Running crawls are never blocked: nothing here locks a table, and the only rows it locks
are those of the ended job it is removing, for one short transaction at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import Connection, Engine, text

from .models import JOB_STATUSES, OPEN_JOB_STATUSES, OPEN_PAGE_STATUSES

ENDED_JOB_STATUSES = [status for status in JOB_STATUSES if status not in OPEN_JOB_STATUSES]
DEFAULT_BATCH_SIZE = 200  # pages (~125 word counts each) per transaction: well under a second
JOBS_PER_QUERY = 100  # old jobs looked up at a time, so a large backlog is not read at once

# The Celery task ids of some pages: their current ones and those of their recorded attempts.
TASK_IDS = text(
    "SELECT task_id FROM pages WHERE id = ANY(:ids) AND task_id IS NOT NULL "
    "UNION SELECT task_id FROM page_attempts WHERE page_id = ANY(:ids) AND task_id IS NOT NULL"
)

# An old job that may be removed. Asked again, with its row locked, before each batch: a job
# reopened meanwhile (its failed pages retried) or with a page still running is left alone.
_REMOVABLE = """
    j.status = ANY(:ended)
    AND coalesce(j.finished_at, j.created_at) < :cutoff
    AND NOT EXISTS (SELECT 1 FROM pages p WHERE p.job_id = j.id AND p.status = ANY(:open))
"""


@dataclass
class PruneReport:
    """What a prune removed (or, in a dry run, would remove)."""

    jobs: int = 0
    job_urls: int = 0
    pages: int = 0
    word_counts: int = 0
    task_results: int = 0  # rows of celery_taskmeta
    transactions: int = 0
    largest_batch: int = 0  # the most pages removed in one transaction

    def counts(self) -> dict[str, int]:
        """Return the rows per table (the fields that count rows)."""
        skip = {"transactions", "largest_batch"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def summary(self) -> str:
        """Describe the counts in one line."""
        return (
            f"{self.jobs} jobs, {self.job_urls} seed URLs, {self.pages} pages, "
            f"{self.word_counts} word counts, {self.task_results} Celery results"
        )


def prune(
    engine: Engine,
    older_than_days: int,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> PruneReport:
    """Remove the jobs that ended more than `older_than_days` days ago, with all their rows."""
    if older_than_days < 0 or batch_size < 1:
        raise ValueError("older_than_days must be at least 0 and batch_size at least 1")
    with engine.connect() as conn:
        cutoff = conn.execute(
            text("SELECT now() - make_interval(days => :days)"), {"days": older_than_days}
        ).scalar_one()
        has_results = conn.execute(text("SELECT to_regclass('celery_taskmeta')")).scalar()
    params = {"cutoff": cutoff, "ended": ENDED_JOB_STATUSES, "open": list(OPEN_PAGE_STATUSES)}
    if dry_run:
        return _count(engine, params, has_results is not None)
    report = PruneReport()
    after = None
    while job_ids := _old_jobs(engine, params, after):
        for job_id in job_ids:
            _remove_job(engine, job_id, params, batch_size, has_results is not None, report)
        after = job_ids[-1]
    return report


def _old_jobs(engine: Engine, params: dict, after: object) -> list:
    """Return the next ids of removable jobs, in id order, after the id `after`."""
    query = f"SELECT j.id FROM jobs j WHERE {_REMOVABLE}"
    query += " AND j.id > :after" if after is not None else ""
    query += " ORDER BY j.id LIMIT :limit"
    with engine.connect() as conn:
        rows = conn.execute(text(query), {**params, "after": after, "limit": JOBS_PER_QUERY})
        return [row.id for row in rows]


def _remove_job(
    engine: Engine,
    job_id: object,
    params: dict,
    batch_size: int,
    has_results: bool,
    report: PruneReport,
) -> None:
    """Remove one job's pages batch by batch, then its seed URLs and its row."""
    while True:
        with engine.begin() as conn:
            report.transactions += 1
            if not _lock_if_removable(conn, job_id, params):
                return
            rows = conn.execute(
                text("SELECT id FROM pages WHERE job_id = :job ORDER BY id LIMIT :n"),
                {"job": job_id, "n": batch_size},
            ).all()
            if not rows:
                report.job_urls += _delete(
                    conn, "DELETE FROM job_urls WHERE job_id = :job", job=job_id
                )
                report.jobs += _delete(conn, "DELETE FROM jobs WHERE id = :job", job=job_id)
                return
            page_ids = [row.id for row in rows]
            # Celery's rows: of each page's task, and of the tasks of its earlier attempts
            # (a page queued again by hand got a new task id, see dead_letters.py).
            task_ids = conn.execute(TASK_IDS, {"ids": page_ids}).scalars().all()
            report.word_counts += _delete(
                conn, "DELETE FROM word_counts WHERE page_id = ANY(:ids)", ids=page_ids
            )
            if has_results and task_ids:
                report.task_results += _delete(
                    conn, "DELETE FROM celery_taskmeta WHERE task_id = ANY(:ids)", ids=task_ids
                )
            # Rows that reference pages with ON DELETE CASCADE (word counts, attempts) go too.
            report.pages += _delete(conn, "DELETE FROM pages WHERE id = ANY(:ids)", ids=page_ids)
            report.largest_batch = max(report.largest_batch, len(page_ids))


def _lock_if_removable(conn: Connection, job_id: object, params: dict) -> bool:
    """Lock the job's row if it may still be removed; say whether it may."""
    query = f"SELECT 1 FROM jobs j WHERE j.id = :job AND {_REMOVABLE} FOR UPDATE OF j"
    return conn.execute(text(query), {**params, "job": job_id}).first() is not None


def _delete(conn: Connection, statement: str, **params: object) -> int:
    """Run a DELETE and return how many rows it removed."""
    return conn.execute(text(statement), params).rowcount


def _count(engine: Engine, params: dict, has_results: bool) -> PruneReport:
    """Count what a prune would remove, deleting nothing."""
    results = (
        "SELECT count(*) FROM celery_taskmeta WHERE task_id IN ("
        "  SELECT task_id FROM pages WHERE job_id IN (SELECT id FROM old)"
        "  UNION SELECT a.task_id FROM page_attempts a JOIN pages p ON p.id = a.page_id"
        "  WHERE p.job_id IN (SELECT id FROM old))"
        if has_results
        else "SELECT 0"
    )
    query = f"""
        WITH old AS (SELECT j.id FROM jobs j WHERE {_REMOVABLE})
        SELECT (SELECT count(*) FROM old) AS jobs,
               (SELECT count(*) FROM job_urls WHERE job_id IN (SELECT id FROM old)) AS job_urls,
               (SELECT count(*) FROM pages WHERE job_id IN (SELECT id FROM old)) AS pages,
               (SELECT count(*) FROM word_counts w JOIN pages p ON p.id = w.page_id
                 WHERE p.job_id IN (SELECT id FROM old)) AS word_counts,
               ({results}) AS task_results
    """
    with engine.connect() as conn:
        row = conn.execute(text(query), params).one()
    return PruneReport(**row._asdict())
