"""Dead letters for people: list failed pages with their history, and queue them again.

What the API (`GET /api/failures`, `POST /api/jobs/<id>/retry`, `GET /api/jobs/<id>/attempts`)
and the web page `/failures` share. The queuing itself is job_tasks.storing.dead_letters.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from job_tasks.settings import Settings
from job_tasks.storing.dead_letters import RetryRefused, retry_failed_pages
from job_tasks.storing.models import Job, Page, PageAttempt

from .errors import ApiError
from .job_requests import parse_urls
from .queries import iso

RETRY_FIELDS = ("urls",)
# How each refusal is answered: no such page is a 404; a page or job in the wrong state is
# bad input, 400 (the API answers bad input with 400, 403, 404, 413, 415 or 429).
REFUSALS = {
    "not_a_page": ("not_found", 404),
    "not_failed": ("not_failed", 400),
    "job_cancelled": ("job_cancelled", 400),
    "nothing_to_retry": ("nothing_to_retry", 400),
}
HISTORY_FIELDS = ("attempt", "outcome", "error", "message", "http_status", "worker", "task_id")


def parse_retry_request(data: Any, settings: Settings) -> list[str] | None:
    """Check a retry body (`{}` or `{"urls": [...]}`); return the URLs, or None for all."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(data) - set(RETRY_FIELDS))
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
    if "urls" not in data:
        return None
    # Normalised as a job's URLs are when found, so they are spelled as the pages were
    # stored; a job never has more than max_pages_per_job pages.
    return parse_urls(data["urls"], settings, most=settings.max_pages_per_job)


def retry_pages(
    sessions: sessionmaker[Session], job_id: uuid.UUID, urls: list[str] | None, settings: Settings
) -> int | None:
    """Queue a job's failed pages again; return how many, or None if there is no such job.

    A refusal (cancelled job, a URL that is not a failed page of the job, nothing failed)
    raises ApiError and changes nothing.
    """
    try:
        return retry_failed_pages(sessions, job_id, urls, settings.job_tasks_in_broker)
    except RetryRefused as refused:
        code, status = REFUSALS[refused.code]
        field = None if refused.index is None else f"urls[{refused.index}]"
        raise ApiError(status, code, refused.message, field) from None


def failed_pages(
    session: Session, limit: int, job_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """Return failed pages across jobs (or of one job), newest first, with their history."""
    query = select(
        Page.id,
        Page.job_id,
        Page.url,
        Page.error,
        Page.message,
        Page.http_status,
        Page.attempts,
        Page.worker,
        Page.finished_at,
        Job.status.label("job_status"),  # a cancelled job's pages cannot be retried
    )
    query = query.join(Job, Job.id == Page.job_id).where(Page.status == "failed")
    if job_id is not None:
        query = query.where(Page.job_id == job_id)
    order = (Page.finished_at.desc().nulls_last(), Page.id.desc())
    rows = session.execute(query.order_by(*order).limit(limit)).all()
    history = _histories(session, [row.id for row in rows])
    return [
        {
            "job_id": str(row.job_id),
            "job_status": row.job_status,
            "url": row.url,
            "error": row.error,
            "message": row.message,
            "attempts": row.attempts,
            "http_status": row.http_status,
            "worker": row.worker,
            "failed_at": iso(row.finished_at),
            "history": history[row.id],
        }
        for row in rows
    ]


def jobs_with_failures(session: Session, limit: int) -> list[dict[str, Any]]:
    """Return the jobs that have failed pages, the latest failure first, with their count."""
    latest = func.max(Page.finished_at)
    rows = session.execute(
        select(Page.job_id, Job.status, func.count().label("failed"), latest.label("latest"))
        .join(Job, Job.id == Page.job_id)
        .where(Page.status == "failed")
        .group_by(Page.job_id, Job.status)
        .order_by(latest.desc().nulls_last(), Page.job_id)
        .limit(limit)
    ).all()
    return [
        {
            "job_id": str(row.job_id),
            "job_status": row.status,
            "failed": row.failed,
            "latest": iso(row.latest),
        }
        for row in rows
    ]


def job_attempts(session: Session, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return every recorded failed attempt of a job's pages, page by page, oldest first."""
    rows = session.execute(
        select(Page.url, *(getattr(PageAttempt, name) for name in HISTORY_FIELDS))
        .add_columns(PageAttempt.started_at, PageAttempt.finished_at)
        .join(Page, Page.id == PageAttempt.page_id)
        .where(Page.job_id == job_id)
        .order_by(Page.id, PageAttempt.attempt)
    ).all()
    return [_attempt(row, url=row.url) for row in rows]


def _histories(session: Session, page_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    histories: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = session.execute(
        select(PageAttempt.page_id, *(getattr(PageAttempt, name) for name in HISTORY_FIELDS))
        .add_columns(PageAttempt.started_at, PageAttempt.finished_at)
        .where(PageAttempt.page_id.in_(page_ids))
        .order_by(PageAttempt.page_id, PageAttempt.attempt)
    )
    for row in rows:
        histories[row.page_id].append(_attempt(row))
    return histories


def _attempt(row: Any, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        **{name: getattr(row, name) for name in HISTORY_FIELDS},
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }
