"""Write a page's progress and counts to PostgreSQL: the last step a worker takes.

Every write is safe to repeat, because Celery may deliver a task twice (late acks):
- a page is claimed only while it is queued or running and its job is still open;
- a page is ended only from `running`, so of two runs of one page only the first writes;
- its words go in the same transaction as its `done` status, so a reader never sees half
  a page, and the word rows cannot be written twice.
A counted page's links become new pages of its job (crawling, contract section 2) in that
same transaction, while the job's row is locked: the unique (job_id, url) row decides
whether a URL is new, and the lock makes the count against max_pages exact. The same lock
makes ending the job exact: when two workers finish the last two pages at once, exactly
one of them sees no page left and ends the job.

The statements run on the session's connection (Core), not through the ORM: a worker
writes two transactions per page, and the ORM's bookkeeping of objects nobody reads back
cost a third of the time they take.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Row, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from .errors import PageError
from .models import OPEN_JOB_STATUSES, OPEN_PAGE_STATUSES, Job, Page

NewPage = tuple[int, str]  # (page id, task id) of a page to send to the workers

INSERT_WORD_COUNTS = text(
    "INSERT INTO word_counts (page_id, word, count) "
    "SELECT :page_id, word, count "
    "FROM unnest(CAST(:words AS text[]), CAST(:counts AS integer[])) AS t(word, count) "
    "ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True)
class ClaimedPage:
    """A page a worker has started, with what it needs to know about its job."""

    id: int
    job_id: uuid.UUID
    url: str
    depth: int
    attempts: int


@dataclass(frozen=True)
class CountedPage:
    """What a worker learned about a page it counted."""

    http_status: int
    title: str | None
    counts: dict[str, int]
    elapsed_ms: int
    links: list[str] = field(default_factory=list)  # same-host URLs found, normalised

    @property
    def word_count(self) -> int:
        return sum(self.counts.values())


def claim_page(
    sessions: sessionmaker[Session], page_id: int, worker: str, task_id: str
) -> ClaimedPage | None:
    """Mark a page running (and its job, if this is its first page); None if not to be run.

    A page that already ended, or whose job was cancelled, is not run again.
    """
    with sessions.begin() as session:
        conn = session.connection()
        # The job row is locked before the page row, in the same order as a cancel, so a
        # claim and a cancel of the same job can never wait for each other.
        conn.execute(
            update(Job)
            .where(Job.id == select(Page.job_id).where(Page.id == page_id).scalar_subquery())
            .where(Job.status == "queued")
            .values(status="running", started_at=func.now())
        )
        job_is_open = (
            select(Job.id).where(Job.id == Page.job_id, Job.status.in_(OPEN_JOB_STATUSES)).exists()
        )
        row = conn.execute(
            update(Page)
            .where(Page.id == page_id, Page.status.in_(OPEN_PAGE_STATUSES), job_is_open)
            .values(
                status="running",
                started_at=func.now(),
                attempts=Page.attempts + 1,
                worker=worker,
                task_id=task_id,
            )
            .returning(Page.id, Page.job_id, Page.url, Page.depth, Page.attempts)
        ).one_or_none()
    return ClaimedPage(*row) if row else None


def finish_page(
    sessions: sessionmaker[Session], page: ClaimedPage, result: CountedPage
) -> list[NewPage] | None:
    """Store a counted page, its words and the pages it leads to, in one transaction.

    Returns the new pages to enqueue (after the commit, so a worker taking one finds its
    row), or None if this page had already ended (a task delivered twice).
    """
    with sessions.begin() as session:
        conn = session.connection()
        ended = conn.execute(
            update(Page)
            .where(Page.id == page.id, Page.status == "running")
            .values(
                status="done",
                http_status=result.http_status,
                title=result.title,
                word_count=result.word_count,
                unique_words=len(result.counts),
                error=None,
                message=None,
                finished_at=func.now(),
                elapsed_ms=result.elapsed_ms,
            )
            .returning(Page.id)
        ).one_or_none()
        if ended is None:
            return None
        if result.counts:
            # One statement for all the page's words (two arrays, unnested into rows): a
            # list of rows would be sent as one INSERT per word.
            conn.execute(
                INSERT_WORD_COUNTS,
                {
                    "page_id": page.id,
                    "words": list(result.counts),
                    "counts": list(result.counts.values()),
                },
            )
        job = _lock_job(conn, page.job_id)
        new_pages: list[NewPage] = []
        if job.status in OPEN_JOB_STATUSES and page.depth < job.depth:
            new_pages = _add_pages(conn, job, result.links, page.depth + 1)
        _end_job_if_complete(conn, job)
    return new_pages


def fail_page(
    sessions: sessionmaker[Session], page: ClaimedPage, error: PageError, elapsed_ms: int
) -> bool:
    """Store why a page could not be counted; False if it had already ended."""
    with sessions.begin() as session:
        conn = session.connection()
        ended = conn.execute(
            update(Page)
            .where(Page.id == page.id, Page.status == "running")
            .values(
                status="failed",
                http_status=error.http_status,
                error=error.code,
                message=error.message,
                finished_at=func.now(),
                elapsed_ms=elapsed_ms,
            )
            .returning(Page.id)
        ).one_or_none()
        if ended is None:
            return False
        _end_job_if_complete(conn, _lock_job(conn, page.job_id))
    return True


def _lock_job(conn: Connection, job_id: uuid.UUID) -> Row:
    """Lock a job's row until the transaction ends; concurrent finishers take turns."""
    return conn.execute(
        select(Job.id, Job.status, Job.depth, Job.max_pages)
        .where(Job.id == job_id)
        .with_for_update()
    ).one()


def _add_pages(conn: Connection, job: Row, urls: Iterable[str], depth: int) -> list[NewPage]:
    """Add the URLs a job has not seen yet as queued pages, up to its max_pages in all."""
    room = (
        job.max_pages
        - conn.execute(
            select(func.count()).select_from(Page).where(Page.job_id == job.id)
        ).scalar_one()
    )
    candidates = list(dict.fromkeys(urls))  # unique, in the order the page lists them
    if room <= 0 or not candidates:
        return []
    seen = set(
        conn.execute(
            select(Page.url).where(Page.job_id == job.id, Page.url.in_(candidates))
        ).scalars()
    )
    fresh = [url for url in candidates if url not in seen][:room]
    if not fresh:
        return []
    # ON CONFLICT: the unique (job_id, url) row has the last word, should the check above
    # ever miss a row (it cannot while the job's row is locked, but the index is the rule).
    rows = conn.execute(
        insert(Page)
        .on_conflict_do_nothing(index_elements=["job_id", "url"])
        .returning(Page.id, Page.task_id),
        [
            {"job_id": job.id, "url": url, "depth": depth, "task_id": str(uuid.uuid4())}
            for url in fresh
        ],
    )
    return [(row.id, row.task_id) for row in rows]


def _end_job_if_complete(conn: Connection, job: Row) -> None:
    """End a job (its row locked) whose pages have all ended: done if one was counted."""
    if job.status not in OPEN_JOB_STATUSES:
        return  # cancelled while this page ran
    unfinished = select(exists().where(Page.job_id == job.id, Page.status.in_(OPEN_PAGE_STATUSES)))
    if conn.execute(unfinished).scalar():
        return
    counted = select(exists().where(Page.job_id == job.id, Page.status == "done"))
    conn.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            status="done" if conn.execute(counted).scalar() else "failed",
            # The clock now, not the transaction's start (now()): a transaction that
            # waited for the job's lock must not end the job before a page committed
            # meanwhile.
            finished_at=func.clock_timestamp(),
        )
    )
