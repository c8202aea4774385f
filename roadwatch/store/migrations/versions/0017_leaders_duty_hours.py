"""chiefs' duty hours, the stored weekly hot-spot/forecast analysis, routes sent to phones
(issue 22)

Revision ID: 0015_leaders_duty_hours
Revises: 0014_leaders_reviews
Create Date: 2026-12-06 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0015_leaders_duty_hours"
down_revision = "0014_ops_ingest_parked"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chief_duty_hours",
        sa.Column("reporter_id", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.String(length=200), nullable=False),
        sa.Column("updated_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["reporter_id"], ["reporters.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("reporter_id"),
    )
    op.create_table(
        "leaders_analysis",
        sa.Column("week", sa.String(length=10), nullable=False),
        sa.Column("computed_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("week"),
    )

    op.create_table(
        "site_visit_routes",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("first", sa.String(length=64), nullable=True),
        sa.Column("chiefs", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_site_visit_routes_created_at", "site_visit_routes", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_site_visit_routes_created_at", table_name="site_visit_routes")
    op.drop_table("site_visit_routes")
    op.drop_table("leaders_analysis")
    op.drop_table("chief_duty_hours")
