"""The dead-letter web page: failed pages across jobs, and retries (docs/operations.md,
"Dead letters").

`/failures` lists the pages that ended failed, newest first, with their error, attempts
and history, and the jobs that have some; each has a "retry" button (a CSRF-protected
form, like a job's cancel) for those who may retry it, as has a job's page when it has
failed pages. A retry goes
back to the page its button was on, with a flashed message saying what happened.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import dead_letter_requests
from ..errors import ApiError
from ..extensions import sessions, settings, submissions_limit
from ..owners import changeable_jobs, require_job_owner
from .job_pages import uuid_or_404

PAGES_SHOWN = 100
JOBS_SHOWN = 20

bp = Blueprint("web_failures", __name__)


@bp.get("/failures")
def failures_page() -> str:
    with sessions()() as session:
        pages = dead_letter_requests.failed_pages(session, PAGES_SHOWN)
        jobs = dead_letter_requests.jobs_with_failures(session, JOBS_SHOWN)
        listed = [job["job_id"] for job in jobs] + [page["job_id"] for page in pages]
        changeable = changeable_jobs(session, listed)
    return render_template(
        "failures.html", pages=pages, jobs=jobs, pages_shown=PAGES_SHOWN, changeable=changeable
    )


@bp.post("/jobs/<job_id>/retry")
@submissions_limit
def retry(job_id: str) -> Response:
    """Queue a job's failed pages again (only `url`'s, if the form names one).

    Only the browser that submitted the job, or the instructor, may (else a 403 page).
    """
    url = request.form.get("url")
    job_uuid = uuid_or_404(job_id)
    require_job_owner(job_uuid)
    try:
        count = dead_letter_requests.retry_pages(
            sessions(), job_uuid, [url] if url else None, settings()
        )
    except ApiError as refused:  # the page or job is not in a state to retry: say why
        flash(refused.message, "error")
    else:
        if count is None:
            abort(404)
        flash(f"{count} failed page{'' if count == 1 else 's'} queued again", "notice")
    if request.form.get("back") == "failures":
        return redirect(url_for("web_failures.failures_page"), code=303)
    return redirect(url_for("web.job", job_id=job_id), code=303)
