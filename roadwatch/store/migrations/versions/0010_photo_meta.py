"""photo metadata: what the camera said (position, bearing, time), kept once the photo is clean

Revision ID: 0010_photo_meta
Revises: 0009_phone_devices
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0010_photo_meta"
down_revision = "0009_phone_devices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_meta",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_sha256", sa.String(length=64), nullable=False),
        sa.Column("mime", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", roadwatch.store.models.UTCDateTime(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=True),
        sa.Column("had_metadata", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("bearing_deg", sa.Float(), nullable=True),
        sa.Column("bearing_ref", sa.String(length=1), nullable=True),
        sa.Column("taken_at", roadwatch.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("photo_meta")
