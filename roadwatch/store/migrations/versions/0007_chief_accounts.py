"""chief accounts: road chiefs' passwords for the phone app and the broker

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chief_accounts",
        sa.Column("reporter_id", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("password_set_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["reporter_id"], ["reporters.id"]),
        sa.PrimaryKeyConstraint("reporter_id"),
    )


def downgrade() -> None:
    op.drop_table("chief_accounts")
