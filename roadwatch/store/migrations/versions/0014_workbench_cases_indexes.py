"""the case workbench's list: indexes for a district's newest cases and for overdue ones

Revision ID: 0014_workbench_cases_indexes
Revises: 0013_sessions
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

from alembic import op

import roadwatch.store.models  # noqa: F401  (the column types, as every migration)

revision = "0014_workbench_cases_indexes"
down_revision = "0013_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reports_district_observed", ["district", "observed_at"], unique=False
        )
        batch_op.create_index("ix_reports_case_status_due", ["case_status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_case_status_due")
        batch_op.drop_index("ix_reports_district_observed")
