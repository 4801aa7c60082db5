"""Start a job: record it and its first pages, then send as many of them as it may.

The first step of the flow (submit → broker), shared by the manager's API and web form
and by scheduled runs. The job is written to PostgreSQL *before* its tasks are sent, so a
worker never receives a page that is not yet in the database; and if the broker cannot
take them, the job is removed again: a job exists only when its work is on its way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session, sessionmaker

from .models import Job, JobUrl, Page
from .store import NewPage, release_pages
from .tasks import enqueue_pages


@dataclass(frozen=True)
class JobRequest:
    """A checked submission: seed URLs (normalised, without repeats), depth, max_pages."""

    urls: list[str]
    depth: int
    max_pages: int


def start_job(
    sessions: sessionmaker[Session],
    job: JobRequest,
    in_broker: int,
    schedule_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Record a job and send its first pages; return its id.

    Raises kombu's OperationalError (after removing the job) if the broker is away.
    """
    job_id, pages = record_job(sessions, job, in_broker, schedule_id)
    try:
        enqueue_pages(pages)
    except Exception:
        forget_job(sessions, job_id)
        raise
    return job_id


def record_job(
    sessions: sessionmaker[Session],
    job: JobRequest,
    in_broker: int,
    schedule_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, list[NewPage]]:
    """Write a job, its seed URLs and its pages (queued) in one transaction; return the
    job's id and the pages to send now (at most `in_broker`: fair sharing, see store.py)."""
    with sessions.begin() as session:
        return write_job(session, job, in_broker, schedule_id)


def write_job(
    session: Session,
    job: JobRequest,
    in_broker: int,
    schedule_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, list[NewPage]]:
    """Write a job as record_job does, in the caller's transaction (a scheduled run is
    written in the same transaction that claims its period, see schedules.py)."""
    job_id = uuid.uuid4()
    session.execute(
        insert(Job).values(
            id=job_id,
            status="queued",
            depth=job.depth,
            max_pages=job.max_pages,
            schedule_id=schedule_id,
        )
    )
    session.execute(
        insert(JobUrl),
        [{"job_id": job_id, "position": i, "url": url} for i, url in enumerate(job.urls)],
    )
    session.execute(
        insert(Page),
        [{"job_id": job_id, "url": url, "depth": 0, "status": "queued"} for url in job.urls],
    )
    # A page gets its Celery task id when it is released to the broker, so
    # celery_taskmeta and pages join on it.
    pages = release_pages(session.connection(), job_id, in_broker)
    return job_id, pages


def forget_job(sessions: sessionmaker[Session], job_id: uuid.UUID) -> None:
    """Remove a job the broker did not take, with its seed URLs and pages."""
    with sessions.begin() as session:
        session.execute(delete(Page).where(Page.job_id == job_id))
        session.execute(delete(JobUrl).where(JobUrl.job_id == job_id))
        session.execute(delete(Job).where(Job.id == job_id))
