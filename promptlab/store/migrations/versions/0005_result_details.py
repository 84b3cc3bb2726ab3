"""results: tool calls, parsed structured output, reasoning text and token detail

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
# 0004 (ratings) comes from another branch; until it is merged this follows 0003.
down_revision = "0004"
branch_labels = None
depends_on = None

_TEXT = ("tool_calls_json", "parsed_json", "reasoning")
_COUNTS = ("reasoning_tokens", "cached_input_tokens", "cache_write_tokens")


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        for column in _TEXT:
            batch_op.add_column(sa.Column(column, sa.Text(), nullable=True))
        for column in _COUNTS:
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch copy would recreate `results`.
    for column in reversed(_TEXT + _COUNTS):
        op.drop_column("results", column)
