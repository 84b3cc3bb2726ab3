"""index trials by run and dataset row, for the viewer's matrix (promptlab serve)

Ratings need no table: a person's rating is a row of `scores` with scorer 'human'.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trials_run_row", "trials", ["run_id", "row_id", "idx"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trials_run_row", table_name="trials")
