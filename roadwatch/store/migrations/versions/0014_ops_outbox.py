"""notice outbox: notices written with the case change and published from the table

Revision ID: 0014_ops_outbox
Revises: 0013_sessions
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0014_ops_outbox"
down_revision = "0014_ops_ingest_parked"  # re-chained in ops-health's merge (two 0014 heads)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_outbox",
        sa.Column("notice_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("district", sa.String(length=16), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("notice_id", "channel"),
    )
    op.create_index(
        "ix_notice_outbox_pending",
        "notice_outbox",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_notice_outbox_pending", table_name="notice_outbox")
    op.drop_table("notice_outbox")
