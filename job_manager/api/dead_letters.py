"""The dead-letter API: failed pages, their history, and retries (docs/reference.md,
"Dead letters").

`GET /api/failures` lists the pages that ended failed, across jobs; `POST
/api/jobs/<id>/retry` queues a job's failed pages again; `GET /api/jobs/<id>/attempts`
gives the history of their failed attempts. JSON only, like jobs.py, whose checks
(checks.py) these views share; the work is in dead_letter_requests.py.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .. import dead_letter_requests
from ..extensions import sessions, settings, submissions_limit
from ..owners import require_job_owner
from .checks import (
    existing_job,
    no_job,
    number_arg,
    parse_job_id,
    read_json_body,
    require_json_body,
)

bp = Blueprint("api_failures", __name__, url_prefix="/api")
bp.before_request(require_json_body)


@bp.get("/failures")
def list_failures() -> Response:
    """Failed pages, newest first; `job=<id>` keeps one job's."""
    limit = number_arg("limit", default=50, high=1000)
    job_id = request.args.get("job")
    with sessions()() as session:
        if job_id is not None:
            existing_job(session, job_id)
        job_uuid = None if job_id is None else parse_job_id(job_id)
        return jsonify(dead_letter_requests.failed_pages(session, limit, job_uuid))


@bp.post("/jobs/<job_id>/retry")
@submissions_limit
def retry_job(job_id: str) -> tuple[Response, int]:
    """Queue a job's failed pages again (all, or those of `urls`); answer with the job.

    Only its owner (token or session) or the instructor may.
    """
    job_uuid = parse_job_id(job_id)
    require_job_owner(job_uuid)
    urls = dead_letter_requests.parse_retry_request(read_json_body(), settings())
    if dead_letter_requests.retry_pages(sessions(), job_uuid, urls, settings()) is None:
        raise no_job(job_id)
    with sessions()() as session:
        return jsonify(existing_job(session, job_id)), 202


@bp.get("/jobs/<job_id>/attempts")
def list_attempts(job_id: str) -> Response:
    """Every failed attempt of a job's pages, page by page, oldest first."""
    with sessions()() as session:
        existing_job(session, job_id)
        return jsonify(dead_letter_requests.job_attempts(session, parse_job_id(job_id)))
