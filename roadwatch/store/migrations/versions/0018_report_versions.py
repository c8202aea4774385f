"""each report's ranked fields just before a change after intake, so that a published
week's recomputation reads them as they were at its cut-off

Revision ID: 0016_report_versions
Revises: 0015_leaders_duty_hours
Create Date: 2026-12-07 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0016_report_versions"
down_revision = "0015_leaders_duty_hours"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.String(length=36), nullable=False),
        sa.Column("changed_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("segment_id", sa.String(length=64), nullable=True),
        sa.Column("case_status", sa.String(length=16), nullable=True),
        sa.Column("due_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.Column("rectified_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.Column("closed_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_versions_report_id", "report_versions", ["report_id"])
    op.create_index("ix_report_versions_changed_at", "report_versions", ["changed_at"])


def downgrade() -> None:
    op.drop_index("ix_report_versions_changed_at", table_name="report_versions")
    op.drop_index("ix_report_versions_report_id", table_name="report_versions")
    op.drop_table("report_versions")
