"""Owners of jobs and schedules, skipped runs, and the cap of schedules per client.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

Who may change a job or a schedule (owner_token_hash: the sha256 of the secret its
submitter was given), the due periods a schedule skipped because its previous run was
still open, and a keyed hash of who made a schedule, with an index to count a client's
active schedules.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("owner_token_hash", sa.Text()))
    op.add_column(
        "schedules", sa.Column("runs_skipped", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("schedules", sa.Column("last_skipped_at", sa.DateTime(timezone=True)))
    op.add_column("schedules", sa.Column("owner_token_hash", sa.Text()))
    op.add_column("schedules", sa.Column("client_key", sa.Text()))
    op.create_index(
        "schedules_active_per_client",
        "schedules",
        ["client_key"],
        postgresql_where=sa.text("NOT paused"),
    )


def downgrade() -> None:
    op.drop_index("schedules_active_per_client", table_name="schedules")
    for column in ("client_key", "owner_token_hash", "last_skipped_at", "runs_skipped"):
        op.drop_column("schedules", column)
    op.drop_column("jobs", "owner_token_hash")
