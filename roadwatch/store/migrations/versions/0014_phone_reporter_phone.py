"""reporters.phone: a road chief's mobile number, a second sign-in name for the phone app

Revision ID: 0014_phone_reporter_phone
Revises: 0013_sessions
Create Date: 2026-12-06 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models  # noqa: F401  (as every migration: the models' types)

revision = "0014_phone_reporter_phone"
down_revision = "0014_geoloc_snap_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reporters") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
        batch.create_unique_constraint("uq_reporters_phone", ["phone"])


def downgrade() -> None:
    with op.batch_alter_table("reporters") as batch:
        batch.drop_constraint("uq_reporters_phone", type_="unique")
        batch.drop_column("phone")
