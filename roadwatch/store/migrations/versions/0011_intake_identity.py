"""intake identity: API keys bound to one reporter, and disabled reporters

Revision ID: 0011_intake_identity
Revises: 0010_photo_meta
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0011_intake_identity"
down_revision = "0010_photo_meta"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reporters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("reporter_id", sa.String(length=64), nullable=False),
        sa.Column("system", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["reporter_id"], ["reporters.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_reporter_id", ["reporter_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_reporter_id")
    op.drop_table("api_keys")
    with op.batch_alter_table("reporters", schema=None) as batch_op:
        batch_op.drop_column("disabled")
