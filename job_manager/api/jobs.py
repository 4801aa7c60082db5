"""The JSON API (docs/reference.md, "Jobs"): how programs submit jobs and read their results.

Every view is thin: check the input, call job_requests.py or queries.py, return JSON.
Reading is open to everyone; changing a job needs its owner (owners.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from job_tasks import app as celery_app
from job_tasks.reading.words import tokenize
from job_tasks.storing.models import PAGE_STATUSES
from job_tasks.upkeep.broker import queue_length

from .. import activity, queries
from ..bounds import where_is_the_bound
from ..errors import ApiError
from ..extensions import census, sessions, settings, submissions_limit
from ..job_requests import cancel_job, parse_job_request, submit_job
from ..owners import client_key, new_token, require_job_owner
from ..schedule_requests import create_schedule, parse_timing
from ..shared_answers import SharedAnswers
from .checks import (
    existing_job,
    no_job,
    number_arg,
    parse_job_id,
    read_json_body,
    require_json_body,
    stopwords_arg,
)

ACTIVITY_BUCKET_SECONDS = 5  # the dashboard counts pages ended per 5 seconds
ACTIVITY_SHARED_SECONDS = 1.0  # the dashboard polls every 2 s: its numbers stay fresh

bp = Blueprint("api", __name__, url_prefix="/api")


bp.before_request(require_json_body)


@bp.post("/jobs")
@submissions_limit
def create_job() -> tuple[Response, int]:
    """Accept a job (202) or a schedule (201); either answer carries its owner's token."""
    data = read_json_body()
    job = parse_job_request(data, settings())
    token, token_hash = new_token()  # shown once, here; the row keeps only its hash
    job = replace(job, owner_token_hash=token_hash)
    if "schedule" in data:  # repeat it (docs/reference.md, "Schedules"): a schedule, not one job
        timing = parse_timing(data["schedule"], settings().min_schedule_minutes)
        schedule = create_schedule(sessions(), job, timing, client_key(), settings())
        return jsonify({**schedule, "token": token}), 201
    job_id = submit_job(sessions(), job, settings())
    url = url_for("api.get_job", job_id=job_id)
    return jsonify({"id": str(job_id), "status": "queued", "url": url, "token": token}), 202


@bp.get("/jobs")
def list_jobs() -> Response:
    limit = number_arg("limit", default=20, high=100)
    with sessions()() as session:
        return jsonify(queries.recent_jobs(session, limit))


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    with sessions()() as session:
        return jsonify(existing_job(session, job_id))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    """Cancel a job: its owner (token or session) or the instructor only."""
    job_uuid = parse_job_id(job_id)
    require_job_owner(job_uuid)
    if not cancel_job(sessions(), job_uuid):
        raise no_job(job_id)
    with sessions()() as session:
        return jsonify(existing_job(session, job_id))


@bp.get("/jobs/<job_id>/pages")
def get_pages(job_id: str) -> Response:
    status = request.args.get("status")
    if status is not None and status not in PAGE_STATUSES:
        raise ApiError(
            400, "invalid_value", f"status must be one of {', '.join(PAGE_STATUSES)}", "status"
        )
    limit = number_arg("limit", default=None, high=10_000)
    offset = number_arg("offset", default=0, high=10_000_000, low=0)
    newest_first = request.args.get("order", "found") == "newest"
    with sessions()() as session:
        existing_job(session, job_id)
        return jsonify(
            queries.job_pages(session, parse_job_id(job_id), status, limit, offset, newest_first)
        )


@bp.get("/jobs/<job_id>/words")
def get_words(job_id: str) -> Response:
    limit = number_arg("limit", default=50, high=1000)
    include_stopwords = stopwords_arg()
    with sessions()() as session:
        existing_job(session, job_id)
        return jsonify(queries.job_words(session, parse_job_id(job_id), limit, include_stopwords))


@bp.get("/words/<word>")
def get_word(word: str) -> Response:
    words = tokenize(word)  # the same normalisation as counting: a curly apostrophe finds "don't"
    if len(words) != 1:
        raise ApiError(
            400, "invalid_value", "give exactly one word (letters, digits, ' or -)", "word"
        )
    limit = number_arg("limit", default=100, high=1000)
    with sessions()() as session:
        return jsonify(queries.word_pages(session, words[0], limit))


@bp.get("/activity")
def get_activity() -> Response:
    """What the workers are doing: pages per second, queue, workers, and where the bound is.

    Every open dashboard asks every 2 seconds: one answer per ACTIVITY_SHARED_SECONDS serves
    them all (shared_answers.py), so thirty dashboards cost what one does.
    """
    minutes = number_arg("minutes", 5, 60)
    answers: SharedAnswers = current_app.extensions["wordcrawl_answers"]
    report = answers.get(("activity", minutes), ACTIVITY_SHARED_SECONDS, lambda: _activity(minutes))
    return jsonify(report)


def _activity(minutes: int) -> dict[str, Any]:
    """Read the activity report: the pages from PostgreSQL, the workers from the census."""
    with sessions()() as session:
        report = activity.page_activity(session, minutes, ACTIVITY_BUCKET_SECONDS)
    report["minutes"] = minutes
    try:
        report["queue_length"] = queue_length(celery_app, list(celery_app.amqp.queues))
        reports = census().alive()
    except (redis.RedisError, OSError, KombuOperationalError):  # the broker is away
        report["queue_length"], reports = None, {}
    report["workers"] = activity.worker_rows(report["workers"], reports)
    report["machines"] = activity.machines(reports)
    report["bound"] = where_is_the_bound(report, settings().per_host_concurrency)
    return report


@bp.get("/health")
def health() -> tuple[Response, int]:
    """Say whether the broker, the database and at least one worker answer.

    The workers are those alive in the census (one Redis round trip, which also shows the
    broker answers): no broadcast to every worker, nothing to wait for per request.
    """
    report: dict[str, object] = {"broker": "ok", "database": "ok", "workers": 0}
    try:
        report["workers"] = len(census().alive())
    except redis.RedisError as err:
        report["broker"] = f"down: {type(err).__name__}"
    try:
        with sessions()() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        report["database"] = f"down: {type(err).__name__}"
    healthy = report["broker"] == "ok" and report["database"] == "ok" and report["workers"]
    return jsonify(report), 200 if healthy else 503
