"""parked_messages: case messages that overtook their report (several ingest workers)

Revision ID: 0014_ops_ingest_parked
Revises: 0013_sessions
Create Date: 2026-12-06 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0014_ops_ingest_parked"
down_revision = "0015_extension_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Expand only: a new table that old code never reads, so old and new workers can run
    # side by side during a rolling upgrade.
    op.create_table(
        "parked_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("waits_for", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("reporter_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("response_topic", sa.String(length=255), nullable=True),
        sa.Column("correlation_data", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("parked_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("next_try_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("parked_messages", schema=None) as batch_op:
        batch_op.create_index("ix_parked_messages_waits_for", ["waits_for"], unique=False)
        batch_op.create_index("ix_parked_messages_next_try_at", ["next_try_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("parked_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_parked_messages_next_try_at")
        batch_op.drop_index("ix_parked_messages_waits_for")
    op.drop_table("parked_messages")
