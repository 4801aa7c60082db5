"""Describe wordcrawl's own tables (docs/reference.md, "Tables") with SQLAlchemy.

The manager writes `jobs`, `job_urls` and the first `pages`; workers move pages through
their states and write `word_counts`; notebooks and the API read them all. Celery's own
`celery_taskmeta` lives in the same database but is Celery's business, not ours.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
PAGE_STATUSES = ("queued", "running", "done", "failed", "skipped")
PAGE_ERRORS = (
    "invalid_url",
    "blocked_address",
    "robots_disallowed",
    "http_error",
    "timeout",
    "too_large",
    "unsupported_content_type",
    "too_many_redirects",
    "connection_error",
    "decode_error",
)
ENDED_PAGE_STATUSES = ("done", "failed", "skipped")
OPEN_PAGE_STATUSES = ("queued", "running")
OPEN_JOB_STATUSES = ("queued", "running")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """The metadata that `wordcrawl init-db` creates."""


class Job(Base):
    """One submission: seed URLs, how deep to follow links, how many pages at most."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_one_of("status", JOB_STATUSES), name="jobs_status_known"),
        Index("jobs_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(Text, default="queued")
    depth: Mapped[int] = mapped_column(Integer)
    max_pages: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The schedule this job is a run of (docs/reference.md, "Schedules"); null for a job
    # submitted once.
    # A plain column, no foreign key: a run is kept, with this id, when its schedule is
    # deleted, so its history can still be grouped.
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    # sha256 (hex) of the secret the submitter was given once; who shows the secret may
    # cancel or retry the job. Null for a job submitted from the web form (the browser's
    # session remembers it) or before owners existed. A run gets its schedule's.
    owner_token_hash: Mapped[str | None] = mapped_column(Text)


class Schedule(Base):
    """A crawl repeated every N minutes or on a cron line; each run is a job (schedule_runs.py).

    `next_run_at` is the one due time not yet started: whoever moves it on (a conditional
    UPDATE from the due time it read) starts that period's run, so a period runs once.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("(every_minutes IS NULL) <> (cron IS NULL)", name="schedules_one_timing"),
        CheckConstraint("every_minutes IS NULL OR every_minutes >= 1", name="schedules_minutes"),
        Index("schedules_due", "next_run_at", postgresql_where="NOT paused"),
        Index("schedules_active_per_client", "client_key", postgresql_where="NOT paused"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    urls: Mapped[list[str]] = mapped_column(ARRAY(Text))
    depth: Mapped[int] = mapped_column(Integer)
    max_pages: Mapped[int] = mapped_column(Integer)
    every_minutes: Mapped[int | None] = mapped_column(Integer)
    cron: Mapped[str | None] = mapped_column(Text)  # "m h dom mon dow", in UTC
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Due periods not run because the previous run was still open (queued or running).
    runs_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_skipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # As jobs.owner_token_hash; its runs get it too.
    owner_token_hash: Mapped[str | None] = mapped_column(Text)
    # Who made it, for the cap of active schedules per client: a keyed hash of the client's
    # address, never the address itself.
    client_key: Mapped[str | None] = mapped_column(Text)


class JobUrl(Base):
    """A seed URL of a job, in the order the user gave it."""

    __tablename__ = "job_urls"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)


class Page(Base):
    """One URL fetched for a job, and what became of it."""

    __tablename__ = "pages"
    __table_args__ = (
        # One row per URL per job: the database, not a check-then-insert, keeps crawls unique.
        UniqueConstraint("job_id", "url", name="pages_job_id_url_key"),
        CheckConstraint(_one_of("status", PAGE_STATUSES), name="pages_status_known"),
        CheckConstraint(
            f"error IS NULL OR {_one_of('error', PAGE_ERRORS)}", name="pages_error_known"
        ),
        # Finding a job's unfinished pages is the question asked after every page.
        Index("pages_job_id_status", "job_id", "status"),
        # Fair sharing asks after every page how many of its job's pages are in the broker
        # and which wait for room (pages.py). These indexes hold only those pages, so the
        # answer costs the same with 10 pages waiting as with 10,000 (the index above
        # would read every open page of the job, each time).
        Index(
            "pages_in_broker",
            "job_id",
            postgresql_where="status IN ('queued', 'running') AND task_id IS NOT NULL",
        ),
        Index(
            "pages_waiting",
            "job_id",
            "id",
            postgresql_where="status = 'queued' AND task_id IS NULL",
        ),
        Index("pages_finished_at", "finished_at"),  # the dashboard's pages per second
        # The dead letters, newest first (GET /api/failures), without reading done pages.
        Index("pages_failed_finished_at", "finished_at", postgresql_where="status = 'failed'"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id"))
    url: Mapped[str] = mapped_column(Text)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(Text, default="queued")
    http_status: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(Text)
    word_count: Mapped[int | None] = mapped_column(Integer)
    unique_words: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)
    # Given when the page is sent to the broker; a queued page without one is waiting for
    # its job's turn (fair sharing, pages.py).
    task_id: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    elapsed_ms: Mapped[int | None] = mapped_column(Integer)
    # How many times a worker has started this page (docs/how-it-works.md, "Retries and dead
    # letters"): a page whose task keeps coming back (a crash, a lost message) is ended
    # instead of looping forever.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


ATTEMPT_OUTCOMES = ("retried", "failed")  # Celery tried the page again later / it ended failed


class PageAttempt(Base):
    """One start of a page that did not count it (docs/how-it-works.md, "Retries and dead letters").

    Written only when an attempt fails (`pages.record_attempt`), never for a counted page,
    so the history of a page queued again by hand survives its new attempts. A start whose
    worker died leaves no row: the gaps in `attempt` are those starts.
    """

    __tablename__ = "page_attempts"
    __table_args__ = (
        CheckConstraint(_one_of("outcome", ATTEMPT_OUTCOMES), name="page_attempts_outcome_known"),
    )

    page_id: Mapped[int] = mapped_column(
        ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)  # pages.attempts then
    outcome: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(Text)
    # The Celery task of this attempt: a page queued again by hand gets a new task id, so
    # its earlier tasks' rows in celery_taskmeta are found (and pruned) through here.
    task_id: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class WordCount(Base):
    """How often one word occurs on one counted page."""

    __tablename__ = "word_counts"
    __table_args__ = (Index("word_counts_word", "word"),)

    page_id: Mapped[int] = mapped_column(
        ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True
    )
    word: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
