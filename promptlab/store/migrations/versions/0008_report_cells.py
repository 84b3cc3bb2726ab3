"""report_cells, report_cell_scores: per-run cell aggregates for reports, and the triggers
that drop them when a run's results or scores change

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

A report over a million results reads a few thousand aggregate rows instead (see
promptlab/store/cells.py). They are a cache, never the record: any insert, update or
delete of a run's results drops the run's cells, and of its scores drops its score cells,
in the writing transaction itself, whatever code writes. The code that finishes a write
(a run's end, `score`, a rating, a merge) fills them again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
# 0007 comes from another branch; the lead re-chains this after it at merge.
down_revision = "0007"
branch_labels = None
depends_on = None

_EVENTS = ("INSERT", "UPDATE", "DELETE")
# table written -> the cache table whose rows of that run it drops
_DROPS = {"results": "report_cells", "scores": "report_cell_scores"}


def upgrade() -> None:
    op.create_table(
        "report_cells",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("model_alias", sa.String(length=200), nullable=False),
        sa.Column("prompt", sa.String(length=200), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("cached", sa.Integer(), nullable=False),
        sa.Column("tool_call_ok", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latencies", sa.LargeBinary(), nullable=False),
        sa.Column("ttfts", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "cell"),
    )
    op.create_table(
        "report_cell_scores",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("scorer", sa.String(length=200), nullable=False),
        sa.Column("model_alias", sa.String(length=200), nullable=False),
        sa.Column("prompt", sa.String(length=200), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("idxs", sa.LargeBinary(), nullable=False),
        sa.Column("vals", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "scorer", "cell"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    for table, cache in _DROPS.items():
        for event in _EVENTS:
            row = "OLD" if event == "DELETE" else "NEW"
            op.execute(f"CREATE TRIGGER {table}_{event.lower()}_drops_cells AFTER {event} ON "
                       f"{table} FOR EACH ROW BEGIN DELETE FROM {cache} WHERE run_id = "
                       f"{row}.run_id; END")


def _postgres_triggers() -> None:
    # The shared advisory lock pairs with the exclusive one a refresh holds (cells.py): a
    # refresh never reads around a write that has dropped cells but not yet committed.
    for table, cache in _DROPS.items():
        op.execute(f"""
CREATE FUNCTION {table}_drop_cells() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE rid text;
BEGIN
  IF TG_OP = 'DELETE' THEN rid := OLD.run_id; ELSE rid := NEW.run_id; END IF;
  PERFORM pg_advisory_xact_lock_shared(hashtext('promptlab.cells:' || rid));
  DELETE FROM {cache} WHERE run_id = rid;
  RETURN NULL;
END $$""")
        op.execute(f"CREATE TRIGGER {table}_drops_cells AFTER INSERT OR UPDATE OR DELETE ON "
                   f"{table} FOR EACH ROW EXECUTE FUNCTION {table}_drop_cells()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _DROPS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_drops_cells ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_drop_cells()")
    else:
        for table in _DROPS:
            for event in _EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event.lower()}_drops_cells")
    op.drop_table("report_cell_scores")
    op.drop_table("report_cells")
