"""Read jobs, pages and word counts in the shapes of the API (docs/reference.md, "The HTTP API").

The reading end of the flow (database → API, web pages, command line). Everything here
is a plain SELECT; the numbers a notebook computes with SQL are the numbers shown here.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from job_tasks.reading.words import english_stopwords
from job_tasks.storing.models import PAGE_STATUSES, Job, JobUrl, Page, WordCount

PAGE_FIELDS = (
    "url",
    "depth",
    "status",
    "http_status",
    "title",
    "word_count",
    "unique_words",
    "error",
    "message",
    "worker",
    "task_id",
    "elapsed_ms",
)


def iso(moment: datetime | None) -> str | None:
    """Write a time as ISO 8601 with its timezone, as the API promises."""
    return moment.isoformat() if moment else None


def get_job(session: Session, job_id: uuid.UUID) -> dict[str, Any] | None:
    """Return a job as GET /api/jobs/<id> shows it, or None."""
    job = session.get(Job, job_id)
    return _describe_jobs(session, [job])[0] if job else None


def recent_jobs(
    session: Session, limit: int, schedule_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """Return the newest jobs (or the newest runs of one schedule), newest first."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
    if schedule_id is not None:
        query = query.where(Job.schedule_id == schedule_id)
    return _describe_jobs(session, list(session.scalars(query)))


def _describe_jobs(session: Session, jobs: list[Job]) -> list[dict[str, Any]]:
    ids = [job.id for job in jobs]
    urls: dict[uuid.UUID, list[str]] = defaultdict(list)
    for job_id, url in session.execute(
        select(JobUrl.job_id, JobUrl.url).where(JobUrl.job_id.in_(ids)).order_by(JobUrl.position)
    ):
        urls[job_id].append(url)
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for job_id, status, n in session.execute(
        select(Page.job_id, Page.status, func.count())
        .where(Page.job_id.in_(ids))
        .group_by(Page.job_id, Page.status)
    ):
        counts[job_id][status] = n
    return [
        {
            "id": str(job.id),
            "status": job.status,
            "depth": job.depth,
            "max_pages": job.max_pages,
            "created_at": iso(job.created_at),
            "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "urls": urls[job.id],
            "schedule_id": str(job.schedule_id) if job.schedule_id else None,
            "pages": {
                "total": sum(counts[job.id].values()),
                **{status: counts[job.id].get(status, 0) for status in PAGE_STATUSES},
            },
        }
        for job in jobs
    ]


def job_pages(
    session: Session,
    job_id: uuid.UUID,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Return a job's pages in the order they were found, or the latest news first.

    "Newest first" orders by the page's last change (ended, else started, else queued),
    so a live view shows what the workers are doing now.
    """
    query = select(*(getattr(Page, name) for name in PAGE_FIELDS)).where(Page.job_id == job_id)
    if status:
        query = query.where(Page.status == status)
    if newest_first:
        last_change = func.coalesce(Page.finished_at, Page.started_at, Page.queued_at)
        order = (last_change.desc(), Page.id.desc())
    else:
        order = (Page.id,)
    rows = session.execute(query.order_by(*order).limit(limit).offset(offset))
    return [dict(row._mapping) for row in rows]


def job_words(
    session: Session, job_id: uuid.UUID, limit: int, include_stopwords: bool
) -> list[dict[str, Any]]:
    """Return a job's words summed over its counted pages, most frequent first."""
    total = func.sum(WordCount.count)
    query = (
        select(WordCount.word, total.label("count"))
        .join(Page, Page.id == WordCount.page_id)
        .where(Page.job_id == job_id, Page.status == "done")
        .group_by(WordCount.word)
        # Ties go by code point (the C collation), the same on every server.
        .order_by(total.desc(), WordCount.word.collate("C"))
        .limit(limit)
    )
    if not include_stopwords:
        query = query.where(WordCount.word.not_in(sorted(english_stopwords())))
    return [{"word": word, "count": int(count)} for word, count in session.execute(query)]


def word_pages(session: Session, word: str, limit: int) -> dict[str, Any]:
    """Return where a word was counted: its total, and the pages with the most of it."""
    total = session.execute(
        select(func.coalesce(func.sum(WordCount.count), 0)).where(WordCount.word == word)
    ).scalar_one()
    rows = session.execute(
        select(Page.job_id, Page.url, WordCount.count)
        .join(Page, Page.id == WordCount.page_id)
        .where(WordCount.word == word, Page.status == "done")
        .order_by(WordCount.count.desc(), Page.id)
        .limit(limit)
    )
    pages = [{"job_id": str(job_id), "url": url, "count": count} for job_id, url, count in rows]
    return {"word": word, "total": int(total), "pages": pages}
