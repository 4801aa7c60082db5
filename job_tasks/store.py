"""Write a page's progress and counts to PostgreSQL: the last step a worker takes.

Every write is safe to repeat, because Celery may deliver a task twice (late acks):
- a page is claimed only while it is queued or running and its job is still open;
- a page is ended only from `running`, so of two runs of one page only the first writes;
- its words go in the same transaction as its `done` status, so a reader never sees half
  a page, and the word rows cannot be written twice.
Ending the job takes a lock on the job's row, so when two workers finish the last two
pages at once, exactly one of them sees no page left and ends the job.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from .errors import PageError
from .models import OPEN_JOB_STATUSES, OPEN_PAGE_STATUSES, Job, Page, WordCount


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
        # The job row is locked before the page row, in the same order as a cancel, so a
        # claim and a cancel of the same job can never wait for each other.
        session.execute(
            update(Job)
            .where(Job.id == select(Page.job_id).where(Page.id == page_id).scalar_subquery())
            .where(Job.status == "queued")
            .values(status="running", started_at=func.now())
        )
        job_is_open = (
            select(Job.id).where(Job.id == Page.job_id, Job.status.in_(OPEN_JOB_STATUSES)).exists()
        )
        row = session.execute(
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


def finish_page(sessions: sessionmaker[Session], page: ClaimedPage, result: CountedPage) -> bool:
    """Store a counted page and its words in one transaction; False if it had already ended."""
    with sessions.begin() as session:
        ended = session.execute(
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
            return False
        if result.counts:
            # One multi-row INSERT (SQLAlchemy batches the list), not one per word.
            session.execute(
                insert(WordCount).on_conflict_do_nothing(),
                [{"page_id": page.id, "word": w, "count": n} for w, n in result.counts.items()],
            )
        _end_job_if_complete(session, page.job_id)
    return True


def fail_page(
    sessions: sessionmaker[Session], page: ClaimedPage, error: PageError, elapsed_ms: int
) -> bool:
    """Store why a page could not be counted; False if it had already ended."""
    with sessions.begin() as session:
        ended = session.execute(
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
        _end_job_if_complete(session, page.job_id)
    return True


def _end_job_if_complete(session: Session, job_id: uuid.UUID) -> None:
    """End a job whose pages have all ended: done if one was counted, else failed."""
    # The row lock makes concurrent finishers take turns; each sees the others' commits.
    status = session.execute(
        select(Job.status).where(Job.id == job_id).with_for_update()
    ).scalar_one()
    if status not in OPEN_JOB_STATUSES:
        return  # cancelled while this page ran
    unfinished = select(exists().where(Page.job_id == job_id, Page.status.in_(OPEN_PAGE_STATUSES)))
    if session.execute(unfinished).scalar():
        return
    counted = select(exists().where(Page.job_id == job_id, Page.status == "done"))
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status="done" if session.execute(counted).scalar() else "failed",
            finished_at=func.now(),
        )
    )
