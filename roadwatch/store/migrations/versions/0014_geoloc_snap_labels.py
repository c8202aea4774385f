"""geolocation labels: each review or phone choice beside the snapper's answer (issue 21)

Revision ID: 0014_geoloc_snap_labels
Revises: 0013_sessions
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0014_geoloc_snap_labels"
down_revision = "0014_leaders_reviews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snap_labels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("decided_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("segment_id", sa.String(length=64), nullable=True),
        sa.Column("snapped_id", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("heading_deg", sa.Float(), nullable=True),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("snap_labels", schema=None) as batch_op:
        batch_op.create_index("ix_snap_labels_report_id", ["report_id"], unique=False)
        batch_op.create_index("ix_snap_labels_decided_at", ["decided_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("snap_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_snap_labels_decided_at")
        batch_op.drop_index("ix_snap_labels_report_id")
    op.drop_table("snap_labels")
