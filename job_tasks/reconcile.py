"""Find pages whose task message was lost, and send them again: the job record is the truth.

A page is `queued` or `running` in PostgreSQL as long as a task message for it should
exist in Redis: waiting in a queue, or taken by a worker and not yet acknowledged (late
acks keep it in Redis's "unacked" set until the task ends, retries with a countdown
included). A message can still be lost: Redis restarted without its append-only file, or
flushed. Every WORDCRAWL_RECONCILE_SECONDS each worker asks for a `reconcile_pages` run; the first
to take a short Redis lock compares the open pages of open jobs with the task ids the
broker holds, and enqueues again the pages nobody holds, with their own task ids.

Sending a page twice is harmless (store.py: a page is claimed and ended at most once), so
the reconciler errs on the side of sending: a page is only left alone while young enough
that its message may not have been written yet.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import bootsteps
from sqlalchemy import and_, distinct, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from .celeryconfig import HOUSEKEEPING_QUEUE
from .models import OPEN_JOB_STATUSES, OPEN_PAGE_STATUSES, Job, Page
from .settings import get_settings
from .store import NewPage, lock_job, release_pages

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
            select(Page.id, Page.task_id, Job.status)
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
    return [(row.id, row.task_id) for row in orphans if row.status in OPEN_JOB_STATUSES]


def starved_jobs(sessions: sessionmaker[Session], in_broker: int) -> list[NewPage]:
    """Release the waiting pages of open jobs that have room in the broker.

    Every page that ends releases the next of its job in the same transaction, so this
    finds work only when something changed underneath: WORDCRAWL_JOB_PAGES_IN_BROKER
    raised, or failed pages queued again. It is the safety net that keeps a job moving.
    """
    to_send: list[NewPage] = []
    with sessions.begin() as session:
        conn = session.connection()
        waiting = conn.execute(
            select(distinct(Page.job_id))
            .join(Job, Job.id == Page.job_id)
            .where(
                Page.status == "queued",
                Page.task_id.is_(None),
                Job.status.in_(OPEN_JOB_STATUSES),
            )
        ).scalars()
        for job_id in list(waiting):
            if lock_job(conn, job_id).status in OPEN_JOB_STATUSES:
                to_send += release_pages(conn, job_id, in_broker)
    return to_send


class ReconcileTimer(bootsteps.StartStopStep):
    """A worker step: every WORDCRAWL_RECONCILE_SECONDS, ask for a reconcile_pages run."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker, **kwargs) -> None:
        self.entry = None
        self.period = get_settings().reconcile_seconds

    def start(self, worker) -> None:
        # Only workers that take housekeeping tasks ask for them: a worker started for the
        # crawl queue alone must not fill a queue nobody reads.
        if HOUSEKEEPING_QUEUE in worker.app.amqp.queues.consume_from:
            self.entry = worker.timer.call_repeatedly(self.period, self.request_run, (worker,))

    def stop(self, worker) -> None:
        if self.entry is not None:
            self.entry.cancel()

    def request_run(self, worker) -> None:
        # A message, not the work itself: the timer must never block on a database.
        # It expires with the period, so a broker backlog does not pile up runs.
        try:
            worker.app.send_task("job_tasks.tasks.reconcile_pages", expires=self.period)
        except Exception:  # the broker is away: the next tick asks again
            log.warning("could not ask for a reconcile run", exc_info=True)
