"""Start a job: record it and its first pages, then send as many of them as it may.

The first step of the flow (submit → broker), shared by the manager's API and web form
and by scheduled runs. The job is written to PostgreSQL *before* its tasks are sent, so a
worker never receives a page that is not yet in the database; and if the broker cannot
take them, the job is removed again: a job exists only when its work is on its way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, text
from sqlalchemy.orm import Session, sessionmaker

from ..sending import crawl_queue_waiting, enqueue_pages
from ..settings import get_settings
from .models import Job, JobUrl, Page
from .release import NewPage, messages_for, task_ids_for

# The job, its seed URLs and its pages in one statement (one round trip), the first pages
# released at once, in up to `in_broker` task messages (given their Celery task ids, so
# celery_taskmeta and pages join on them), as release.release_pages does for a job with
# nothing in the broker yet. :task_ids holds those ids; pages past its end get none (NULL) and wait.
# Through the ORM, with release_pages after it, this took six statements and most of the
# CPU of POST /api/jobs (docs/performance.md, "Today's figures").
INSERT_JOB = text(
    """
    WITH job AS (
        INSERT INTO jobs (id, status, depth, max_pages, schedule_id, owner_token_hash)
        VALUES (:job_id, 'queued', :depth, :max_pages, :schedule_id, :owner_token_hash)
    ), seeds AS (
        INSERT INTO job_urls (job_id, position, url)
        SELECT :job_id, position - 1, url
        FROM unnest(CAST(:urls AS text[])) WITH ORDINALITY AS seed (url, position)
    )
    INSERT INTO pages (job_id, url, depth, status, task_id)
    SELECT :job_id, url, 0, 'queued', (CAST(:task_ids AS text[]))[position]
    FROM unnest(CAST(:urls AS text[])) WITH ORDINALITY AS seed (url, position)
    ORDER BY position
    RETURNING id, task_id, url
    """
)


@dataclass(frozen=True)
class JobRequest:
    """A checked submission: seed URLs (normalised, without repeats), depth, max_pages,
    and the hash of its owner's token (None: no token was given out)."""

    urls: list[str]
    depth: int
    max_pages: int
    owner_token_hash: str | None = None


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
    job's id and the pages to send now (in at most `in_broker` task messages: fair
    sharing, see pages.py)."""
    with sessions.begin() as session:
        return write_job(session, job, in_broker, schedule_id)


def write_job(
    session: Session,
    job: JobRequest,
    in_broker: int,
    schedule_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, list[NewPage]]:
    """Write a job as record_job does, in the caller's transaction (a scheduled run is
    written in the same transaction that claims its period, see schedule_runs.py)."""
    job_id = uuid.uuid4()
    group_size = get_settings().group_size
    sent = min(len(job.urls), in_broker * group_size)
    rows = session.connection().execute(
        INSERT_JOB,
        {
            "job_id": job_id,
            "depth": job.depth,
            "max_pages": job.max_pages,
            "schedule_id": schedule_id,
            "owner_token_hash": job.owner_token_hash,
            "urls": job.urls,
            "task_ids": task_ids_for(
                sent, messages_for(sent, in_broker, group_size, crawl_queue_waiting())
            ),
        },
    )
    return job_id, sorted(
        NewPage(row.id, row.task_id, row.url) for row in rows if row.task_id is not None
    )


def forget_job(sessions: sessionmaker[Session], job_id: uuid.UUID) -> None:
    """Remove a job the broker did not take, with its seed URLs and pages."""
    with sessions.begin() as session:
        session.execute(delete(Page).where(Page.job_id == job_id))
        session.execute(delete(JobUrl).where(JobUrl.job_id == job_id))
        session.execute(delete(Job).where(Job.id == job_id))
