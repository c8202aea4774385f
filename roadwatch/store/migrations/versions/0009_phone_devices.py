"""chief devices: the phone app's revocable device credentials (hashed), not passwords

Revision ID: 0009_phone_devices
Revises: 0009_audit_log
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0009_phone_devices"
down_revision = "0009_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chief_devices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("reporter_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("revoked_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["reporter_id"], ["reporters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(
        op.f("ix_chief_devices_reporter_id"), "chief_devices", ["reporter_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_chief_devices_reporter_id"), table_name="chief_devices")
    op.drop_table("chief_devices")
