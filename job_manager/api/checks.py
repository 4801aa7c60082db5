"""Reading a JSON API request: what the API's blueprints (jobs.py, schedules.py,
dead_letters.py) share to check their input.

Each helper either returns a checked value or raises ApiError, which the error handlers
(errors.py) turn into the API's error body.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from sqlalchemy.orm import Session

from .. import queries
from ..errors import ApiError


def require_json_body() -> None:
    """Take bodies only as application/json (which also keeps cross-site forms out)."""
    # Only application/json (docs/reference.md, "Errors"): a form on another site cannot send it,
    # so the API needs no CSRF token. (Werkzeug's is_json would also take "+json" types.)
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")


def read_json_body() -> Any:
    """Return the request's JSON body; raise ApiError(400) when it is not valid JSON."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # [[[[... nested deeper than Python's JSON parser can go
        data = None
    if data is None:
        raise ApiError(400, "invalid_json", "the body is not valid JSON")
    return data


def parse_id(value: str, not_found: ApiError) -> uuid.UUID:
    """Read an id from the path; a malformed one names nothing that exists (`not_found`)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found from None


def parse_job_id(job_id: str) -> uuid.UUID:
    """Read a job id from the path (404 when malformed)."""
    return parse_id(job_id, no_job(job_id))


def existing_job(session: Session, job_id: str) -> dict:
    """Return a job as the API shows it, or raise 404."""
    job = queries.get_job(session, parse_job_id(job_id))
    if job is None:
        raise no_job(job_id)
    return job


def no_job(job_id: str) -> ApiError:
    """Return the 404 error for a job id."""
    return ApiError(404, "not_found", f"there is no job {job_id}")


def stopwords_arg() -> bool:
    """Read ?stopwords=exclude|include (exclude when absent)."""
    stopwords = request.args.get("stopwords", "exclude")
    if stopwords not in ("exclude", "include"):
        raise ApiError(
            400, "invalid_value", "stopwords must be 'exclude' or 'include'", "stopwords"
        )
    return stopwords == "include"


def number_arg(name: str, default: int | None, high: int, low: int = 1) -> int | None:
    """Read a whole number from the query string (?limit=20); `default` when absent."""
    raw = request.args.get(name)
    if raw is None:
        return default
    # isascii: "²" and Arabic-Indic digits are digits to str.isdigit (int() refuses "²"),
    # and thousands of digits (int() refuses those too) are no limit either.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or not low <= int(raw) <= high:
        raise ApiError(
            400, "invalid_value", f"{name} must be a whole number from {low} to {high}", name
        )
    return int(raw)
