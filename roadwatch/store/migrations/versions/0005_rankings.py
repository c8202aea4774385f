"""weekly red and black flags: published rankings, disputes, schedule claims

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rankings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("formula_version", sa.String(length=32), nullable=False),
        sa.Column("formula_sha256", sa.String(length=64), nullable=False),
        sa.Column("as_of", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("published_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("prev_sha256", sa.String(length=64), nullable=True),
        sa.Column("chain_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("week"),
    )
    op.create_table(
        "ranking_disputes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("report_id", sa.String(length=36), nullable=False),
        sa.Column("filed_by", sa.String(length=64), nullable=False),
        sa.Column("filed_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ranking_disputes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ranking_disputes_week"), ["week"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ranking_disputes_report_id"), ["report_id"], unique=False
        )
        batch_op.create_index("ux_ranking_disputes_week_report", ["week", "report_id"], unique=True)
    op.create_table(
        "ranking_jobs",
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("week"),
    )


def downgrade() -> None:
    op.drop_table("ranking_jobs")
    with op.batch_alter_table("ranking_disputes", schema=None) as batch_op:
        batch_op.drop_index("ux_ranking_disputes_week_report")
        batch_op.drop_index(batch_op.f("ix_ranking_disputes_report_id"))
        batch_op.drop_index(batch_op.f("ix_ranking_disputes_week"))
    op.drop_table("ranking_disputes")
    op.drop_table("rankings")
