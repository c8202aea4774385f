"""extension requests: a responsible chief asks for more time, staff approve or refuse

Revision ID: 0015_extension_requests
Revises: 0014_workbench_cases_indexes
Create Date: 2026-12-06 09:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models  # noqa: F401  (the column types, as every migration)
from roadwatch.store.models import UTCDateTime

revision = "0015_extension_requests"
down_revision = "0014_phone_reporter_phone"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "extension_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("report_id", sa.String(length=36), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("granted_hours", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_extension_requests_report_id", "extension_requests", ["report_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_extension_requests_report_id", table_name="extension_requests")
    op.drop_table("extension_requests")
