"""Repeat a crawl: when a schedule's runs are due, and starting them.

Flow of a scheduled run: `wordcrawl beat` (one per deployment) sends `start_due_runs`
(tasks.py) every WORDCRAWL_SCHEDULE_TICK_SECONDS; a worker finds the schedules whose
`next_run_at` has come and, for each, moves `next_run_at` on with a conditional UPDATE
(only if it still holds the due time it read) and writes the run's job in that same
transaction. Two ticks or two beats that find the same due time race on that one row:
PostgreSQL lets one UPDATE through and the other matches nothing, so each period starts
exactly one job, and a job exists exactly when its period was claimed. Its first pages are
then sent like any job's (submission.py); should the broker refuse them, the reconciler
sends them later.

A period that comes due while the schedule's previous run is still open (queued or
running) is claimed the same way but starts no job: the skip is counted on the schedule
(`runs_skipped`, `last_skipped_at`), so a slow site is never crawled twice at once.

Times are UTC. A schedule repeats every N minutes (the first run at once) or on a cron
line "m h dom mon dow" (the first run at the next matching minute); periods missed while
nothing ran (beat stopped, schedule paused) are not made up, only the latest one runs.
How often it may run has a floor (WORDCRAWL_MIN_SCHEDULE_MINUTES): `Timing.shortest_gap`
says how close two runs can come, a cron line's computed from its fields (cron.py).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..sending import enqueue_pages
from .cron import cron_next, cron_shortest_gap
from .models import OPEN_JOB_STATUSES, Job, Schedule
from .submission import JobRequest, write_job

log = logging.getLogger(__name__)

DUE_BATCH = 100  # schedules started per tick at most; the next tick takes the rest
MAX_EVERY_MINUTES = 366 * 24 * 60  # a year


@dataclass(frozen=True)
class Timing:
    """When a schedule runs: every N minutes, or on a cron line (exactly one of them)."""

    every_minutes: int | None = None
    cron: str | None = None

    def as_json(self) -> dict[str, int | str]:
        """Return the timing as the API shows it: {"every_minutes": N} or {"cron": "..."}."""
        if self.every_minutes is not None:
            return {"every_minutes": self.every_minutes}
        return {"cron": self.cron or ""}

    def first_run(self, now: datetime) -> datetime:
        """Return when a new schedule runs first: at once, or at the next cron minute."""
        return now if self.every_minutes is not None else cron_next(self.cron or "", now)

    def next_run(self, due: datetime, now: datetime) -> datetime:
        """Return the due time after `due` that is still to come (missed ones are skipped)."""
        if self.every_minutes is None:
            return cron_next(self.cron or "", max(due, now))
        period = timedelta(minutes=self.every_minutes)
        missed = max(0, (now - due) // period)
        return due + period * (missed + 1)

    def shortest_gap(self, today: date | None = None) -> int:
        """Return the fewest minutes that can separate two runs (exact, or a bit less)."""
        if self.every_minutes is not None:
            return self.every_minutes
        return cron_shortest_gap(self.cron or "", today or datetime.now(UTC).date())

    def resume_at(self, next_run_at: datetime, now: datetime) -> datetime:
        """Return the next run of a schedule unpaused now.

        Every N minutes: as planned, so a schedule paused past its time runs at once.
        Cron: a time missed while paused is not made up; the next matching minute is.
        """
        if self.every_minutes is not None or next_run_at > now:
            return next_run_at
        return cron_next(self.cron or "", now)


def timing_of(schedule: Schedule) -> Timing:
    """Return the timing stored in a schedule's row."""
    return Timing(schedule.every_minutes, schedule.cron)


def start_due(
    sessions: sessionmaker[Session], in_broker: int, now: datetime | None = None
) -> list[uuid.UUID]:
    """Start a run of every unpaused schedule that is due; return the new jobs' ids."""
    now = now or datetime.now(UTC)
    with sessions() as session:
        due = session.scalars(
            select(Schedule)
            .where(Schedule.paused.is_(False), Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at)
            .limit(DUE_BATCH)
        ).all()
    started = []
    for schedule in due:
        job_id = start_run(sessions, schedule, now, in_broker)
        if job_id is not None:
            started.append(job_id)
    return started


def start_run(
    sessions: sessionmaker[Session], schedule: Schedule, now: datetime, in_broker: int
) -> uuid.UUID | None:
    """Claim a schedule's due period and start its run; None if someone claimed it first,
    or if the previous run is still open (the period is then claimed as skipped).

    The claim and the job are one transaction: a run exists exactly when its period was
    claimed, and the period's due time, read before, is what makes the claim exclusive.
    """
    due = schedule.next_run_at
    with sessions.begin() as session:
        still_open = session.scalar(
            select(
                exists().where(Job.schedule_id == schedule.id, Job.status.in_(OPEN_JOB_STATUSES))
            )
        )
        if still_open:
            outcome = {"runs_skipped": Schedule.runs_skipped + 1, "last_skipped_at": now}
        else:
            outcome = {"last_run_at": now}
        claimed = session.execute(
            update(Schedule)
            .where(
                Schedule.id == schedule.id,
                Schedule.next_run_at == due,
                Schedule.paused.is_(False),
            )
            .values(next_run_at=timing_of(schedule).next_run(due, now), **outcome)
            .returning(Schedule.urls, Schedule.depth, Schedule.max_pages, Schedule.owner_token_hash)
        ).first()
        if claimed is None:  # another tick or another beat started this period
            return None
        if still_open:
            log.info("schedule %s: previous run still open, %s skipped", schedule.id, due)
            return None
        request = JobRequest(
            list(claimed.urls), claimed.depth, claimed.max_pages, claimed.owner_token_hash
        )
        job_id, pages = write_job(session, request, in_broker, schedule.id)
    log.info("schedule %s: run %s for %s", schedule.id, job_id, due.isoformat())
    try:
        enqueue_pages(pages)
    except BrokerError:
        # The job and its pages are recorded with their task ids: the reconciler
        # (upkeep/reconcile.py) finds pages no message stands for and sends them again.
        log.warning("schedule %s: run %s waits for the reconciler", schedule.id, job_id)
    return job_id
