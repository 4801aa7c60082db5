"""Accept, change and read schedules: what the API and the web share (docs/reference.md,
"Schedules").

A submission with a "schedule" becomes a row of `schedules`, not a job; beat and the
workers start its runs (job_tasks/storing/schedule_runs.py). Reading a schedule gives its
runs (ordinary jobs whose schedule_id names it) and the words that rose or fell most
between two runs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from job_tasks.settings import Settings
from job_tasks.storing.cron import BadSchedule
from job_tasks.storing.models import Schedule
from job_tasks.storing.schedule_runs import MAX_EVERY_MINUTES, Timing, timing_of
from job_tasks.storing.submission import JobRequest

from . import queries
from .errors import ApiError

SCHEDULE_KINDS = ("every_minutes", "cron")


def parse_timing(value: Any, min_minutes: int) -> Timing:
    """Check a submission's "schedule"; raise ApiError(400) naming the bad field.

    Two runs may come no closer than `min_minutes` (WORDCRAWL_MIN_SCHEDULE_MINUTES).
    """
    field = "schedule"
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in SCHEDULE_KINDS:
        raise ApiError(
            400,
            "invalid_value",
            'schedule must be {"every_minutes": N} or {"cron": "m h dom mon dow"}',
            field,
        )
    kind, given = next(iter(value.items()))
    if kind == "every_minutes":
        if (
            not isinstance(given, int)
            or isinstance(given, bool)
            or not 1 <= given <= MAX_EVERY_MINUTES
        ):
            raise ApiError(
                400,
                "invalid_value",
                f"every_minutes must be a whole number from {min_minutes} to {MAX_EVERY_MINUTES}",
                f"{field}.every_minutes",
            )
        timing = Timing(every_minutes=given)
    else:
        if not isinstance(given, str) or len(given) > 200:
            raise ApiError(400, "invalid_value", "cron must be a string", f"{field}.cron")
        timing = Timing(cron=" ".join(given.split()))
    try:
        gap = timing.shortest_gap()
    except BadSchedule as err:
        raise ApiError(400, "invalid_value", str(err), f"{field}.cron") from err
    if gap < min_minutes:
        minutes = f"{gap} minute{'' if gap == 1 else 's'}"
        runs = (
            f"runs every {minutes}"
            if kind == "every_minutes"
            else f"runs of this cron line can come {minutes} apart"
        )
        raise ApiError(
            400,
            "invalid_value",
            f"{runs}: closer than this server allows (at least {min_minutes} minutes "
            "between two runs of a schedule)",
            f"{field}.{kind}",
        )
    return timing


def create_schedule(
    sessions: sessionmaker[Session],
    job: JobRequest,
    timing: Timing,
    client_key: str,
    settings: Settings,
) -> dict[str, Any]:
    """Record a schedule of a checked job; its first run is due at once (or at the cron).

    Raises ApiError(429) when its client already keeps WORDCRAWL_MAX_SCHEDULES_PER_CLIENT
    active schedules; nothing is written then.
    """
    with sessions.begin() as session:
        _refuse_past_the_cap(session, client_key, settings.max_schedules_per_client)
        schedule = Schedule(
            id=uuid.uuid4(),
            urls=job.urls,
            depth=job.depth,
            max_pages=job.max_pages,
            every_minutes=timing.every_minutes,
            cron=timing.cron,
            paused=False,
            next_run_at=timing.first_run(datetime.now(UTC)),
            owner_token_hash=job.owner_token_hash,
            client_key=client_key,
        )
        session.add(schedule)
        session.flush()
        return describe(schedule)


def _refuse_past_the_cap(session: Session, client_key: str | None, cap: int) -> None:
    """Raise ApiError(429) if this client keeps `cap` active schedules already.

    A lock per client, held to the end of the transaction, makes two requests at once
    count one after the other, so neither slips past the cap.
    """
    if client_key is None:  # made before clients were counted: nobody to count it against
        return
    session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(client_key, 0))))
    active = session.scalar(
        select(func.count())
        .select_from(Schedule)
        .where(Schedule.client_key == client_key, Schedule.paused.is_(False))
    )
    if active >= cap:
        raise ApiError(
            429,
            "too_many_schedules",
            f"you already have {active} active schedules, the most one client may keep "
            f"here ({cap}): pause or delete one first",
        )


def describe(schedule: Schedule) -> dict[str, Any]:
    """Return a schedule as the API shows it."""
    return {
        "id": str(schedule.id),
        "urls": list(schedule.urls),
        "depth": schedule.depth,
        "max_pages": schedule.max_pages,
        "schedule": timing_of(schedule).as_json(),
        "paused": schedule.paused,
        "runs_url": f"/api/schedules/{schedule.id}/runs",
        "created_at": queries.iso(schedule.created_at),
        "next_run_at": None if schedule.paused else queries.iso(schedule.next_run_at),
        "last_run_at": queries.iso(schedule.last_run_at),
        # Periods that came while the previous run was still open, and were not run.
        "runs_skipped": schedule.runs_skipped or 0,
        "last_skipped_at": queries.iso(schedule.last_skipped_at),
    }


def list_schedules(session: Session, limit: int) -> list[dict[str, Any]]:
    """Return the newest schedules first."""
    rows = session.scalars(
        select(Schedule).order_by(Schedule.created_at.desc(), Schedule.id).limit(limit)
    )
    return [describe(schedule) for schedule in rows]


def get_schedule(session: Session, schedule_id: uuid.UUID) -> dict[str, Any] | None:
    """Return one schedule, or None."""
    schedule = session.get(Schedule, schedule_id)
    return describe(schedule) if schedule else None


def set_paused(
    sessions: sessionmaker[Session], schedule_id: uuid.UUID, paused: bool, cap: int
) -> dict[str, Any] | None:
    """Pause or resume a schedule; None if there is no such schedule.

    The row is locked, so a tick claiming a run waits for this (and then sees it paused).
    Resuming counts against its client's `cap` of active schedules (ApiError 429 beyond).
    """
    with sessions.begin() as session:
        schedule = session.get(Schedule, schedule_id, with_for_update=True)
        if schedule is None:
            return None
        if schedule.paused and not paused:  # active again: it counts against the cap
            _refuse_past_the_cap(session, schedule.client_key, cap)
            schedule.next_run_at = timing_of(schedule).resume_at(
                schedule.next_run_at, datetime.now(UTC)
            )
        schedule.paused = paused
        session.flush()
        return describe(schedule)


def delete_schedule(sessions: sessionmaker[Session], schedule_id: uuid.UUID) -> dict | None:
    """Delete a schedule (its runs stay, as jobs); return it as it was, or None."""
    with sessions.begin() as session:
        schedule = session.get(Schedule, schedule_id, with_for_update=True)
        if schedule is None:
            return None
        described = describe(schedule)
        session.execute(delete(Schedule).where(Schedule.id == schedule_id))
        return described
