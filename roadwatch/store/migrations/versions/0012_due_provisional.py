"""provisional deadlines: due_at counted in a year whose holidays were not configured

Revision ID: 0012_due_provisional
Revises: 0011_intake_identity
Create Date: 2026-12-12 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_due_provisional"
down_revision = "0011_intake_identity"
branch_labels = None
depends_on = None

PROVISIONAL = sa.text("due_provisional")


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch_op:
        batch_op.add_column(
            sa.Column("due_provisional", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_index(
        "ix_reports_due_provisional",
        "reports",
        ["case_status"],
        postgresql_where=PROVISIONAL,
        sqlite_where=PROVISIONAL,
    )


def downgrade() -> None:
    op.drop_index("ix_reports_due_provisional", table_name="reports")
    with op.batch_alter_table("reports") as batch_op:
        batch_op.drop_column("due_provisional")
