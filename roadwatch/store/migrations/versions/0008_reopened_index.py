"""reopened transitions by time: the weekly ranking reads one week's, not the whole table

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REOPENED = sa.text("to_status = 'reopened'")


def upgrade() -> None:
    op.create_index(
        "ix_report_transitions_reopened_at",
        "report_transitions",
        ["at"],
        postgresql_where=REOPENED,
        sqlite_where=REOPENED,
    )


def downgrade() -> None:
    op.drop_index("ix_report_transitions_reopened_at", table_name="report_transitions")
