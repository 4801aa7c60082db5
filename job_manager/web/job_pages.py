"""The web pages: a form to submit URLs, and a page per job.

Server-rendered with Jinja (which escapes everything crawled); the job page then keeps
itself up to date by polling the JSON API from static/job.js. The form's session
remembers the jobs it submitted: that browser may cancel and retry them (owners.py).
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from job_tasks.urls import BadUrl, normalize_url

from .. import queries
from ..bounds import RULES
from ..errors import ApiError
from ..extensions import sessions, settings, submissions_limit
from ..job_requests import DEFAULT_MAX_PAGES, cancel_job, parse_job_request, submit_job
from ..owners import changeable_jobs, client_key, remember, require_job_owner
from ..schedule_requests import create_schedule
from .schedule_pages import form_timing

NEWEST_PAGES = 50  # pages a job page lists, the latest news first
URL_SHOWN = 80  # characters of a bad URL an error repeats (it may be thousands long)

bp = Blueprint("web", __name__)


@bp.get("/")
def index() -> str:
    return _render_index()


@bp.post("/")
@submissions_limit
def submit() -> Response | tuple[str, int]:
    """Start a job (or a schedule) from the form; this browser's session may then change it."""
    form = request.form
    try:
        data = {
            "urls": _form_urls(form.get("urls", "")),
            "depth": _form_integer(form.get("depth", "0"), "depth"),
            "max_pages": _form_integer(form.get("max_pages", str(DEFAULT_MAX_PAGES)), "max_pages"),
        }
        job = parse_job_request(data, settings())
        timing = form_timing(form, settings().min_schedule_minutes)  # a schedule instead
        if timing is not None:
            schedule = create_schedule(sessions(), job, timing, client_key(), settings())
            remember(uuid.UUID(schedule["id"]))
            return redirect(url_for("web_schedules.schedule", schedule_id=schedule["id"]), 303)
        job_id = submit_job(sessions(), job, settings())
    except ApiError as err:
        return _render_index(error=err, form=form), err.status
    remember(job_id)
    return redirect(url_for("web.job", job_id=job_id), code=303)


@bp.get("/dashboard")
def dashboard() -> str:
    """All workers at a glance; static/dashboard.js fills it from /api/activity."""
    return render_template("dashboard.html", bound_rules=RULES)


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    job_uuid = uuid_or_404(job_id)
    with sessions()() as session:
        found = queries.get_job(session, job_uuid)
        if found is None:
            abort(404)
        pages = queries.job_pages(session, job_uuid, limit=NEWEST_PAGES, newest_first=True)
        words = queries.job_words(session, job_uuid, 20, include_stopwords=False)
        may_change = bool(changeable_jobs(session, [job_id]))
    return render_template(
        "job.html",
        job=found,
        pages=pages,
        words=words,
        newest_pages=NEWEST_PAGES,
        may_change=may_change,
    )


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    """Cancel a job: the browser that submitted it, or the instructor (else a 403 page)."""
    job_uuid = uuid_or_404(job_id)
    require_job_owner(job_uuid)
    if not cancel_job(sessions(), job_uuid):
        abort(404)
    return redirect(url_for("web.job", job_id=job_id), code=303)


def _render_index(error: ApiError | None = None, form: dict | None = None) -> str:
    with sessions()() as session:
        jobs = queries.recent_jobs(session, 20)
    return render_template("index.html", jobs=jobs, error=error, form=form or {}, limits=settings())


def _form_urls(text: str) -> list[str]:
    """Read the form's URLs, one per line; a bad one is named by its line and what was typed.

    The API names a bad URL by its place in the list (urls[1]); a student typed lines.
    """
    urls = []
    for number, line in enumerate(text.splitlines(), start=1):
        url = line.strip()
        if not url:
            continue
        try:
            normalize_url(url, settings().max_url_length)
        except BadUrl as err:
            shown = url if len(url) <= URL_SHOWN else url[: URL_SHOWN - 1] + "…"
            raise ApiError(400, "invalid_url", f"line {number} ({shown}): {err}", "urls") from err
        urls.append(url)
    return urls


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
