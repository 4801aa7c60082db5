"""The tables of wordcrawl's first release (0.1): jobs, schedules, pages and their words.

Revision ID: 0001
Revises:
Create Date: 2026-12-07

A database that release made has these tables and no alembic_version: `wordcrawl init-db`
stamps it at this revision instead of running it (schema.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PAGE_ERRORS = (
    "'invalid_url', 'blocked_address', 'robots_disallowed', 'http_error', 'timeout', "
    "'too_large', 'unsupported_content_type', 'too_many_redirects', 'connection_error', "
    "'decode_error'"
)


def when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("max_pages", sa.Integer(), nullable=False),
        sa.Column("created_at", when(), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", when()),
        sa.Column("finished_at", when()),
        sa.Column("schedule_id", sa.Uuid()),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="jobs_status_known",
        ),
    )
    op.create_index("jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_schedule_id", "jobs", ["schedule_id"])

    op.create_table(
        "schedules",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("urls", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("max_pages", sa.Integer(), nullable=False),
        sa.Column("every_minutes", sa.Integer()),
        sa.Column("cron", sa.Text()),
        sa.Column("paused", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("created_at", when(), server_default=sa.func.now(), nullable=False),
        sa.Column("next_run_at", when(), nullable=False),
        sa.Column("last_run_at", when()),
        sa.CheckConstraint(
            "(every_minutes IS NULL) <> (cron IS NULL)", name="schedules_one_timing"
        ),
        sa.CheckConstraint("every_minutes IS NULL OR every_minutes >= 1", name="schedules_minutes"),
    )
    op.create_index(
        "schedules_due", "schedules", ["next_run_at"], postgresql_where=sa.text("NOT paused")
    )

    op.create_table(
        "job_urls",
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
    )

    op.create_table(
        "pages",
        sa.Column("id", sa.BigInteger(), primary_key=True),  # bigserial
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("title", sa.Text()),
        sa.Column("word_count", sa.Integer()),
        sa.Column("unique_words", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("message", sa.Text()),
        sa.Column("worker", sa.Text()),
        sa.Column("task_id", sa.Text()),
        sa.Column("queued_at", when(), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", when()),
        sa.Column("finished_at", when()),
        sa.Column("elapsed_ms", sa.Integer()),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.UniqueConstraint("job_id", "url", name="pages_job_id_url_key"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'skipped')",
            name="pages_status_known",
        ),
        sa.CheckConstraint(f"error IS NULL OR error IN ({PAGE_ERRORS})", name="pages_error_known"),
    )
    op.create_index("pages_job_id_status", "pages", ["job_id", "status"])
    op.create_index(
        "pages_in_broker",
        "pages",
        ["job_id"],
        postgresql_where=sa.text("status IN ('queued', 'running') AND task_id IS NOT NULL"),
    )
    op.create_index(
        "pages_waiting",
        "pages",
        ["job_id", "id"],
        postgresql_where=sa.text("status = 'queued' AND task_id IS NULL"),
    )
    op.create_index("pages_finished_at", "pages", ["finished_at"])
    op.create_index(
        "pages_failed_finished_at",
        "pages",
        ["finished_at"],
        postgresql_where=sa.text("status = 'failed'"),
    )

    op.create_table(
        "page_attempts",
        sa.Column(
            "page_id",
            sa.BigInteger(),
            sa.ForeignKey("pages.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("message", sa.Text()),
        sa.Column("http_status", sa.Integer()),
        sa.Column("worker", sa.Text()),
        sa.Column("task_id", sa.Text()),
        sa.Column("started_at", when()),
        sa.Column("finished_at", when(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("outcome IN ('retried', 'failed')", name="page_attempts_outcome_known"),
    )

    op.create_table(
        "word_counts",
        sa.Column(
            "page_id",
            sa.BigInteger(),
            sa.ForeignKey("pages.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("word", sa.Text(), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_index("word_counts_word", "word_counts", ["word"])


def downgrade() -> None:
    for table in ("word_counts", "page_attempts", "pages", "job_urls", "schedules", "jobs"):
        op.drop_table(table)
