"""Queue failed pages again, keeping their history (docs/how-it-works.md, "Retries and dead
letters").

A page that ended `failed` after its retries is a dead letter: it stays in `pages` with its
error, and every failed attempt it made is in `page_attempts` (pages.record_attempt). A
person can send such pages again, one by one or all of a job's at once. They go back to
`queued` without a task id, exactly like pages waiting for their job's turn (fair sharing,
pages.py), with their `attempts` kept; a job that had ended is open again; and
`release_pages` gives the first of them task ids, all under the job's lock, so a worker
ending one of the job's pages at that moment cannot release the same pages too. The tasks
are sent after the commit; should the broker not take them, the reconciler sends them
(reconcile.lost_pages), as for any page whose message was lost.
"""

from __future__ import annotations

import logging
import uuid

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from ..sending import enqueue_pages
from .models import Job, Page
from .release import NewPage, release_pages

log = logging.getLogger(__name__)

ENDED_BY_PAGES = ("done", "failed")  # job statuses its pages decided, which a retry reopens

# A page that failed before its attempts were recorded gets its last failure recorded now,
# so that its history has it and the crash guard (tasks._give_up_if_worn_out) counts from there.
RECORD_LAST_FAILURE = text(
    "INSERT INTO page_attempts "
    "(page_id, attempt, outcome, error, message, http_status, worker, task_id, started_at,"
    " finished_at) "
    "SELECT id, attempts, 'failed', error, message, http_status, worker, task_id, started_at, "
    "coalesce(finished_at, now()) FROM pages WHERE id = ANY(:ids) "
    "ON CONFLICT DO NOTHING"
)


class RetryRefused(Exception):
    """Nothing was queued: the job or a page is not in a state to be retried.

    `code` says why (`job_cancelled`, `not_a_page`, `not_failed`, `nothing_to_retry`);
    `index` is the position of the culprit in the URLs asked for, if one is.
    """

    def __init__(self, code: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.index = code, message, index


def retry_failed_pages(
    sessions: sessionmaker[Session], job_id: uuid.UUID, urls: list[str] | None, in_broker: int
) -> int | None:
    """Queue a job's failed pages again (those of `urls`, or all); return how many, or None
    if there is no such job. Raises RetryRefused and changes nothing if one cannot be."""
    requeued = requeue_failed_pages(sessions, job_id, urls, in_broker)
    if requeued is None:
        return None
    count, to_send = requeued
    try:
        enqueue_pages(to_send)
    except BrokerError:
        # They are queued in PostgreSQL with task ids: the reconciler sends them.
        log.warning("the broker did not take %d retried pages; the reconciler will", count)
    return count


def requeue_failed_pages(
    sessions: sessionmaker[Session], job_id: uuid.UUID, urls: list[str] | None, in_broker: int
) -> tuple[int, list[NewPage]] | None:
    """Put failed pages back to `queued` and reopen their job, in one transaction.

    Returns how many pages were queued again and those to send to the broker now (after
    the commit), or None if there is no such job.
    """
    with sessions.begin() as session:
        conn = session.connection()
        status = conn.execute(
            select(Job.status).where(Job.id == job_id).with_for_update()
        ).scalar_one_or_none()
        if status is None:
            return None
        if status == "cancelled":
            raise RetryRefused("job_cancelled", "the job was cancelled; its pages stay as they are")
        query = select(Page.id, Page.url, Page.status).where(Page.job_id == job_id)
        if urls is None:
            query = query.where(Page.status == "failed")
        else:
            query = query.where(Page.url.in_(urls))
        pages = {row.url: row for row in conn.execute(query)}
        for index, url in enumerate(urls or []):
            if url not in pages:
                raise RetryRefused("not_a_page", f"{url} is not a page of this job", index)
            if pages[url].status != "failed":
                raise RetryRefused("not_failed", f"{url} is {pages[url].status}, not failed", index)
        if not pages:
            raise RetryRefused("nothing_to_retry", "the job has no failed pages")
        ids = [row.id for row in pages.values()]
        conn.execute(RECORD_LAST_FAILURE, {"ids": ids})
        conn.execute(
            update(Page)
            .where(Page.id.in_(ids), Page.status == "failed")
            .values(
                status="queued",
                task_id=None,  # waits for its job's turn; release_pages gives it one
                http_status=None,
                error=None,
                message=None,
                worker=None,
                started_at=None,
                finished_at=None,
                elapsed_ms=None,
                queued_at=func.now(),
                # attempts is kept: the history goes on counting
            )
        )
        conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(ENDED_BY_PAGES))
            .values(status="running", finished_at=None)
        )
        return len(ids), release_pages(conn, job_id, in_broker)
