"""The JSON API of schedules: list, read, pause, delete, compare runs (docs/reference.md,
"Schedules").

A schedule is created by `POST /api/jobs` with a "schedule" (jobs.py); its runs are
ordinary jobs. Every view is thin: check the input, call schedule_requests.py or queries.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session

from job_tasks.storing.models import Job

from .. import queries
from ..errors import ApiError
from ..extensions import sessions, settings
from ..owners import require_schedule_owner
from ..run_changes import run_ids, word_changes
from ..schedule_requests import (
    delete_schedule,
    get_schedule,
    list_schedules,
    set_paused,
)
from .checks import (
    number_arg,
    parse_id,
    read_json_body,
    require_json_body,
    stopwords_arg,
)

bp = Blueprint("schedules", __name__, url_prefix="/api")
bp.before_request(require_json_body)


@bp.get("/schedules")
def list_all() -> Response:
    limit = number_arg("limit", default=20, high=100)
    with sessions()() as session:
        return jsonify(list_schedules(session, limit))


@bp.get("/schedules/<schedule_id>")
def get_one(schedule_id: str) -> Response:
    with sessions()() as session:
        return jsonify(_existing(session, schedule_id))


@bp.get("/schedules/<schedule_id>/runs")
def runs(schedule_id: str) -> Response:
    """The schedule's runs, as GET /api/jobs shows jobs, newest first."""
    limit = number_arg("limit", default=20, high=100)
    with sessions()() as session:
        _existing(session, schedule_id)
        return jsonify(queries.recent_jobs(session, limit, _schedule_uuid(schedule_id)))


@bp.patch("/schedules/<schedule_id>")
def pause_or_resume(schedule_id: str) -> Response:
    """Pause or resume a schedule: its owner (token or session) or the instructor only."""
    require_schedule_owner(_schedule_uuid(schedule_id))
    data = read_json_body()
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(data) - {"paused"})
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
    if not isinstance(data.get("paused"), bool):
        raise ApiError(400, "invalid_value", "paused must be true or false", "paused")
    changed = set_paused(
        sessions(), _schedule_uuid(schedule_id), data["paused"], settings().max_schedules_per_client
    )
    if changed is None:
        raise _no_schedule(schedule_id)
    return jsonify(changed)


@bp.delete("/schedules/<schedule_id>")
def delete(schedule_id: str) -> Response:
    """Delete a schedule (its owner or the instructor); its runs stay, as jobs naming it."""
    require_schedule_owner(_schedule_uuid(schedule_id))
    deleted = delete_schedule(sessions(), _schedule_uuid(schedule_id))
    if deleted is None:
        raise _no_schedule(schedule_id)
    return jsonify(deleted)


@bp.get("/schedules/<schedule_id>/diff")
def diff(schedule_id: str) -> Response:
    """The words whose count changed most between two runs (default: the newest two done)."""
    limit = number_arg("limit", default=20, high=1000)
    include_stopwords = stopwords_arg()
    with sessions()() as session:
        _existing(session, schedule_id)
        from_job, to_job = _compared_runs(session, _schedule_uuid(schedule_id))
        return jsonify(word_changes(session, from_job, to_job, limit, include_stopwords))


def _compared_runs(session: Session, schedule_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    given = {name: request.args.get(name) for name in ("from", "to")}
    if given["from"] is None and given["to"] is None:
        newest = run_ids(session, schedule_id, 2, status="done")
        if len(newest) < 2:
            raise ApiError(404, "not_found", "this schedule has not two done runs yet")
        return newest[1], newest[0]
    runs = []
    for name, value in given.items():
        if value is None:
            raise ApiError(400, "missing_field", "give both from and to (or neither)", name)
        try:
            job_id = uuid.UUID(value)
        except ValueError:
            raise ApiError(400, "invalid_value", f"{name} must be a job id", name) from None
        job = session.get(Job, job_id)
        if job is None or job.schedule_id != schedule_id:
            raise ApiError(404, "not_found", f"job {value} is not a run of this schedule", name)
        runs.append(job_id)
    return runs[0], runs[1]


def _existing(session: Session, schedule_id: str) -> dict[str, Any]:
    found = get_schedule(session, _schedule_uuid(schedule_id))
    if found is None:
        raise _no_schedule(schedule_id)
    return found


def _schedule_uuid(schedule_id: str) -> uuid.UUID:
    return parse_id(schedule_id, _no_schedule(schedule_id))


def _no_schedule(schedule_id: str) -> ApiError:
    return ApiError(404, "not_found", f"there is no schedule {schedule_id}")
