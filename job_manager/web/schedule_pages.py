"""The web pages of schedules: a list, and a page per schedule with its runs.

A schedule is made by the submit form (job_pages.py) when "repeat" is filled in; its page lists
its runs (links to their job pages), pauses, resumes or deletes it (CSRF-protected forms,
like a job's cancel; shown only to the browser that made it and to the instructor), and
shows the words that rose or fell most between its two newest done runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from flask import Blueprint, abort, redirect, render_template, url_for
from werkzeug.wrappers import Response

from job_tasks.storing.schedule_runs import Timing

from .. import owners, queries
from ..errors import ApiError
from ..extensions import sessions, settings
from ..run_changes import run_ids, word_changes
from ..schedule_requests import (
    delete_schedule,
    get_schedule,
    list_schedules,
    parse_timing,
    set_paused,
)

RUNS_SHOWN = 50
CHANGES_SHOWN = 20

bp = Blueprint("web_schedules", __name__)


def form_timing(form: Mapping[str, str], min_minutes: int) -> Timing | None:
    """Read the submit form's "repeat" fields: a checked Timing, or None to crawl once."""
    minutes = form.get("every_minutes", "").strip()
    cron = form.get("cron", "").strip()
    if minutes and cron:
        raise ApiError(
            400, "invalid_value", "repeat every N minutes or on a cron line, not both", "schedule"
        )
    if cron:
        return parse_timing({"cron": cron}, min_minutes)
    if not minutes:
        return None
    if not (minutes.isascii() and minutes.isdigit()) or len(minutes) > 12:
        raise ApiError(
            400, "invalid_value", "minutes must be a whole number", "schedule.every_minutes"
        )
    return parse_timing({"every_minutes": int(minutes)}, min_minutes)


@bp.get("/schedules")
def schedules() -> str:
    with sessions()() as session:
        found = list_schedules(session, 100)
    return render_template("schedules.html", schedules=found)


@bp.get("/schedules/<schedule_id>")
def schedule(schedule_id: str) -> str:
    schedule_uuid = _schedule_uuid(schedule_id)
    with sessions()() as session:
        found = get_schedule(session, schedule_uuid)
        if found is None:
            abort(404)
        may_change = owners.may_change(owners.schedule_owner(session, schedule_uuid))
        runs = queries.recent_jobs(session, RUNS_SHOWN, schedule_uuid)
        newest = run_ids(session, schedule_uuid, 2, status="done")
        changes = (
            word_changes(session, newest[1], newest[0], CHANGES_SHOWN, stopwords=False)
            if len(newest) == 2
            else None
        )
    return render_template(
        "schedule.html",
        schedule=found,
        runs=runs,
        compared=[str(job_id) for job_id in reversed(newest)],
        changes=changes,
        may_change=may_change,
    )


@bp.post("/schedules/<schedule_id>/pause")
def pause(schedule_id: str) -> Response:
    return _set_paused(schedule_id, True)


@bp.post("/schedules/<schedule_id>/resume")
def resume(schedule_id: str) -> Response:
    return _set_paused(schedule_id, False)


@bp.post("/schedules/<schedule_id>/delete")
def delete(schedule_id: str) -> Response:
    owners.require_schedule_owner(_schedule_uuid(schedule_id))
    if delete_schedule(sessions(), _schedule_uuid(schedule_id)) is None:
        abort(404)
    return redirect(url_for("web_schedules.schedules"), code=303)


def _set_paused(schedule_id: str, paused: bool) -> Response:
    """Pause or resume: the browser that made the schedule, or the instructor."""
    owners.require_schedule_owner(_schedule_uuid(schedule_id))
    cap = settings().max_schedules_per_client
    if set_paused(sessions(), _schedule_uuid(schedule_id), paused, cap) is None:
        abort(404)
    return redirect(url_for("web_schedules.schedule", schedule_id=schedule_id), code=303)


def _schedule_uuid(schedule_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(schedule_id)
    except ValueError:
        abort(404)
