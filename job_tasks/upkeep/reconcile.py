"""Find the pages that nobody is crawling any more, and send them again: the job record is
the truth, not the broker.

A page is `queued` or `running` in PostgreSQL as long as a task message for it should
exist in Redis: waiting in a queue, or taken by a worker and not yet acknowledged (late
acks keep it in Redis's "unacked" set until the task ends, retries with a countdown
included). Two things break that, and the deployment's upkeep (recovery.py) looks for both
every WORDCRAWL_RECONCILE_SECONDS:
- a worker dies (SIGKILL, power loss). Its messages stay unacknowledged in Redis until
  the visibility timeout (minutes), so the pages it was running are taken back as soon
  as the census (census.py) no longer counts it alive, with those it had taken and not
  yet started, and sent again under new task ids (`pages_of_dead_workers`); when its old
  messages come back, they find another task id on their pages and do nothing
  (store.CLAIM_PAGES). A worker that restarts under the same name takes back what its
  previous run left running (`pages_left_by`).
- a message is lost: Redis restarted without its append-only file, or was flushed. The
  open pages of open jobs whose task ids the broker does not hold are sent again, with
  their own task ids (`lost_pages`).

Sending a page twice is harmless (storing/pages.py: a page is ended only by the run that claimed
it last), so these err on the side of sending: a page is only left alone while young
enough that its message may not have been written yet, or its worker not yet counted.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, Text, Uuid, and_, cast, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..storing.models import OPEN_JOB_STATUSES, OPEN_PAGE_STATUSES, Job, Page
from ..storing.pages import lock_job
from ..storing.release import NewPage, release_pages

log = logging.getLogger(__name__)


def lost_pages(
    sessions: sessionmaker[Session], held: set[str], grace_seconds: float
) -> list[NewPage]:
    """Return the open pages of open jobs that no broker message stands for.

    Pages that changed in the last `grace_seconds` are left alone: the manager or a
    worker may have committed them and not yet sent their message.

    Open pages of jobs that have ended (cancelled while a worker died on them) end
    `skipped` here instead, so that no page stays open forever.
    """
    last_change = func.coalesce(Page.started_at, Page.queued_at)
    is_old = last_change < func.now() - timedelta(seconds=grace_seconds)
    with sessions.begin() as session:
        rows = session.execute(
            select(Page.id, Page.task_id, Page.url, Job.status)
            .join(Job, Job.id == Page.job_id)
            # Pages without a task id wait for their job's turn (fair sharing): no
            # message stands for them yet, by design.
            .where(Page.status.in_(OPEN_PAGE_STATUSES), Page.task_id.is_not(None), is_old)
        ).all()
        orphans = [row for row in rows if row.task_id not in held]
        ended_job = [row.id for row in orphans if row.status not in OPEN_JOB_STATUSES]
        if ended_job:
            session.execute(
                update(Page)
                .where(and_(Page.id.in_(ended_job), Page.status.in_(OPEN_PAGE_STATUSES)))
                .values(status="skipped", finished_at=func.now())
            )
    return [
        NewPage(row.id, row.task_id, row.url) for row in orphans if row.status in OPEN_JOB_STATUSES
    ]


def starved_jobs(sessions: sessionmaker[Session], in_broker: int) -> list[NewPage]:
    """Release the waiting pages of open jobs that have room in the broker.

    Every page that ends releases the next of its job in the same transaction, so this
    finds work only when something changed underneath: WORDCRAWL_JOB_TASKS_IN_BROKER
    raised, or failed pages queued again. It is the safety net that keeps a job moving.
    """
    to_send: list[NewPage] = []
    with sessions.begin() as session:
        conn = session.connection()
        waiting = conn.execute(
            select(Page.job_id)
            .join(Job, Job.id == Page.job_id)
            .where(
                Page.status == "queued",
                Page.task_id.is_(None),
                Job.status.in_(OPEN_JOB_STATUSES),
            )
            .distinct()
        ).scalars()
        for job_id in list(waiting):
            if lock_job(conn, job_id).status in OPEN_JOB_STATUSES:
                to_send += release_pages(conn, job_id, in_broker)
    return to_send


def pages_of_dead_workers(
    sessions: sessionmaker[Session],
    alive: set[str] | None,
    taken_long_ago: set[str],
    grace_seconds: float,
) -> list[NewPage]:
    """Take back the pages of workers that died, to be sent again under new task ids;
    return them.

    Those are the running pages of workers not `alive` (the census's node names; None:
    the census cannot be trusted now, judge nobody by it), and the queued pages whose
    messages a worker took long ago without starting them (`taken_long_ago`, task ids;
    a live worker starts what it takes at once). A page started or queued in the last
    `grace_seconds` is left alone: its worker may be so new that the census has not
    counted it yet.
    """
    cutoff = func.now() - timedelta(seconds=grace_seconds)
    taken = and_(Page.status == "queued", Page.task_id.in_(taken_long_ago), Page.queued_at < cutoff)
    if alive is None:
        return _take_back(sessions, taken)
    running = and_(Page.status == "running", Page.worker.not_in(alive), Page.started_at < cutoff)
    return _take_back(sessions, or_(running, taken))


def pages_left_by(sessions: sessionmaker[Session], node: str) -> list[NewPage]:
    """Take back the pages still running under a worker's name, to be sent again under
    new task ids; return them. Called as a worker starts, before it takes any task: the
    pages are its previous run's, killed before it could end them."""
    return _take_back(sessions, and_(Page.status == "running", Page.worker == node))


def _take_back(sessions: sessionmaker[Session], which: ColumnElement[bool]) -> list[NewPage]:
    """Put back to `queued`, under new task ids, the open pages `which` selects, of open
    jobs; end those of ended jobs (cancelled meanwhile) `skipped`."""
    # Pages that travelled together travel together again: each old task id becomes one
    # new id, the md5 of it and of this call's salt, written as a uuid.
    new_task_id = cast(cast(func.md5(Page.task_id + uuid.uuid4().hex), Uuid), Text)
    taken = and_(Page.task_id.is_not(None), which)
    to_send: list[NewPage] = []
    with sessions.begin() as session:
        conn = session.connection()
        jobs = conn.execute(select(Page.job_id).where(taken).distinct()).scalars().all()
        # Each job's row is locked before its pages', as everywhere (storing/pages.py), in the
        # order of the jobs' ids, as finishers lock them.
        for job_id in sorted(jobs):
            pages = update(Page).where(Page.job_id == job_id, taken)
            if lock_job(conn, job_id).status not in OPEN_JOB_STATUSES:
                conn.execute(pages.values(status="skipped", finished_at=func.now()))
                continue
            rows = conn.execute(
                pages.values(
                    status="queued",
                    task_id=new_task_id,
                    worker=None,
                    started_at=None,
                    queued_at=func.now(),
                ).returning(Page.id, Page.task_id, Page.url)
            )
            to_send += [NewPage(*row) for row in rows]
    return sorted(to_send)
