"""when the platform had each patrol's coverage, so that a walk a phone's outbox delivers
after a week's cut-off does not change the frozen week (its recomputation in verify)

Revision ID: 0017_patrol_coverage_recorded_at
Revises: 0016_report_versions
Create Date: 2026-12-07 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import roadwatch.store.models

revision = "0017_patrol_coverage_recorded_at"
down_revision = "0016_report_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for the rows already there: counted as before (nobody knows when they came)
    with op.batch_alter_table("patrol_coverage", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recorded_at", roadwatch.store.models.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("patrol_coverage", schema=None) as batch_op:
        batch_op.drop_column("recorded_at")
