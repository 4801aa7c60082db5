"""Accept a job: check the request against the API's rules, then start it, or cancel one.

The first step of the flow (submit → broker): what the API and the web form share.
"""

from __future__ import annotations

import uuid
from typing import Any

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from job_tasks.settings import Settings
from job_tasks.storing.models import OPEN_JOB_STATUSES, Job, Page
from job_tasks.storing.submission import JobRequest, start_job
from job_tasks.urls import BadUrl, normalize_url

from .errors import ApiError

JOB_FIELDS = ("urls", "depth", "max_pages")
# "schedule" repeats the job (docs/reference.md, "Schedules"): checked by schedules.parse_timing.
SUBMISSION_FIELDS = (*JOB_FIELDS, "schedule")
DEFAULT_DEPTH = 0
DEFAULT_MAX_PAGES = 100


def parse_job_request(data: Any, settings: Settings) -> JobRequest:
    """Check a submission (docs/reference.md, "Jobs"); raise ApiError(400) naming the bad field."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(data) - set(SUBMISSION_FIELDS))
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
    urls = parse_urls(data.get("urls"), settings, most=settings.max_urls_per_job)
    depth = _integer(data, "depth", DEFAULT_DEPTH, 0, settings.max_depth)
    max_pages = _integer(data, "max_pages", DEFAULT_MAX_PAGES, 1, settings.max_pages_per_job)
    if len(urls) > max_pages:
        raise ApiError(
            400,
            "invalid_value",
            f"{len(urls)} URLs do not fit in max_pages={max_pages}",
            "max_pages",
        )
    return JobRequest(urls, depth, max_pages)


def parse_urls(value: Any, settings: Settings, most: int) -> list[str]:
    """Check a `urls` field (1 to `most` http(s) URLs); return them normalised, each once."""
    if value is None:
        raise ApiError(400, "missing_field", "urls is required: a list of http(s) URLs", "urls")
    if not isinstance(value, list) or not value:
        raise ApiError(400, "invalid_value", "urls must be a non-empty list of URLs", "urls")
    if len(value) > most:
        raise ApiError(400, "too_many_urls", f"give at most {most} URLs", "urls")
    urls: list[str] = []
    for index, url in enumerate(value):
        try:
            urls.append(normalize_url(url, settings.max_url_length))
        except BadUrl as err:
            field = f"urls[{index}]"  # names the culprit, as docs/reference.md promises
            raise ApiError(400, "invalid_url", f"{field}: {err}", field) from err
    return list(dict.fromkeys(urls))  # the same page once per job


def _integer(data: dict, name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    # bool is an int in Python, but `true` is not a depth.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(
            400, "invalid_value", f"{name} must be a whole number from {low} to {high}", name
        )
    return value


def submit_job(sessions: sessionmaker[Session], job: JobRequest, settings: Settings) -> uuid.UUID:
    """Record a job and send its first pages (job_tasks.storing.submission); return the job id.

    If the broker cannot take the tasks, the job is removed again and ApiError(503) is
    raised: a job is accepted only when its work is on its way.
    """
    try:
        return start_job(sessions, job, settings.job_tasks_in_broker)
    except BrokerError as err:
        raise ApiError(503, "unavailable", "the broker is not answering; try again") from err


def cancel_job(sessions: sessionmaker[Session], job_id: uuid.UUID) -> bool:
    """Cancel an open job: its pages not yet started end skipped. False if no such job.

    Pages already running finish and are stored; the tasks still queued for skipped
    pages find them ended and do nothing.
    """
    with sessions.begin() as session:
        status = session.execute(
            select(Job.status).where(Job.id == job_id).with_for_update()
        ).scalar_one_or_none()
        if status is None:
            return False
        if status in OPEN_JOB_STATUSES:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status="cancelled", finished_at=func.now())
            )
            session.execute(
                update(Page)
                .where(Page.job_id == job_id, Page.status == "queued")
                .values(status="skipped", finished_at=func.now())
            )
    return True
