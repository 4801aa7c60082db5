"""The web pages (contract, section 4): a form to submit URLs, and a page per job.

Server-rendered with Jinja (which escapes everything crawled); the job page then keeps
itself up to date by polling the JSON API from static/job.js.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from . import queries
from .errors import ApiError
from .extensions import limiter, sessions, settings
from .jobs import DEFAULT_MAX_PAGES, cancel_job, parse_job_request, submit_job
from .schedules import create_schedule
from .web_schedules import form_timing

NEWEST_PAGES = 50  # pages a job page lists, the latest news first

bp = Blueprint("web", __name__)


@bp.get("/")
def index() -> str:
    return _render_index()


@bp.post("/")
@limiter.limit(lambda: f"{settings().submissions_per_minute}/minute")
def submit() -> Response | tuple[str, int]:
    form = request.form
    try:
        data = {
            "urls": [line.strip() for line in form.get("urls", "").splitlines() if line.strip()],
            "depth": _form_integer(form.get("depth", "0"), "depth"),
            "max_pages": _form_integer(form.get("max_pages", str(DEFAULT_MAX_PAGES)), "max_pages"),
        }
        job = parse_job_request(data, settings())
        timing = form_timing(form)  # "repeat": a schedule instead of one job
        if timing is not None:
            schedule = create_schedule(sessions(), job, timing)
            return redirect(url_for("web_schedules.schedule", schedule_id=schedule["id"]), 303)
        job_id = submit_job(sessions(), job, settings())
    except ApiError as err:
        return _render_index(error=err, form=form), err.status
    return redirect(url_for("web.job", job_id=job_id), code=303)


@bp.get("/dashboard")
def dashboard() -> str:
    """All workers at a glance; static/dashboard.js fills it from /api/activity."""
    return render_template("dashboard.html")


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    job_uuid = uuid_or_404(job_id)
    with sessions()() as session:
        found = queries.get_job(session, job_uuid)
        if found is None:
            abort(404)
        pages = queries.job_pages(session, job_uuid, limit=NEWEST_PAGES, newest_first=True)
        words = queries.job_words(session, job_uuid, 20, include_stopwords=False)
    return render_template(
        "job.html", job=found, pages=pages, words=words, newest_pages=NEWEST_PAGES
    )


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    if not cancel_job(sessions(), uuid_or_404(job_id)):
        abort(404)
    return redirect(url_for("web.job", job_id=job_id), code=303)


def _render_index(error: ApiError | None = None, form: dict | None = None) -> str:
    with sessions()() as session:
        jobs = queries.recent_jobs(session, 20)
    return render_template("index.html", jobs=jobs, error=error, form=form or {}, limits=settings())


def _form_integer(raw: str, field: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ApiError(400, "invalid_value", f"{field} must be a whole number", field) from None


def uuid_or_404(value: str) -> uuid.UUID:
    """Read an id from a page's path; a malformed one is a page that does not exist."""
    try:
        return uuid.UUID(value)
    except ValueError:
        abort(404)
