"""cache_pending: the runs whose fresh results the cache's index takes in at once, when the
run ends, instead of one trigger call per result; and no unique index on the trials' keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26

The triggers of 0009 put every fresh ok result into cache_entries as its commit landed.
The index is keyed by fingerprint, a hash: each result went to a random page of an index
as big as every result stored, and each commit wrote every page it touched. A
1,000,000-call run slowed as the index grew (its last tenth at 84% of its first tenth's
rate); without the insert trigger, at 90%. A run being sent now has a row here, and the
triggers pass over its results; when it ends, `store/cacheindex.py` adds them sorted by
fingerprint, in one statement, and deletes the row. Results of every other writer (a
merge, an ingest, an older promptlab) are indexed by the triggers as before.

The trials' unique (run_id, key) index goes for the same reason: a trial's key is a hash,
and each trial row wrote a random page of it (without it and the insert trigger, that
run's last tenth went at 94%). It served no lookup (a key prefix is matched with LIKE,
which scanned the run's keys either way: 0.13 s with it, 0.19 s without, for a
1,000,000-trial run). Keys are unique by construction: a plan refuses a dataset id, grid
value, model or prompt given twice before a call is sent (experiment/prepare.py), and the
one defect the index caught, it caught after the calls were paid for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _source(row: str) -> str:
    return f"{row}.status = 'ok' AND {row}.cacheable"


def _trial_key(row: str) -> str:
    return (f"(SELECT cache_key FROM trials WHERE trials.run_id = {row}.run_id "
            f"AND trials.idx = {row}.idx)")


def _add(row: str, *, pending: bool) -> str:
    """Results row `row` (NEW) as an entry, if it is a source (and, with `pending`, if its
    run is not one that indexes its results when it ends)."""
    later = (f" AND NOT EXISTS (SELECT 1 FROM cache_pending "
             f"WHERE cache_pending.run_id = {row}.run_id)") if pending else ""
    return (f"INSERT INTO cache_entries (cache_key, run_id, idx, finished_at) "
            f"SELECT {_trial_key(row)}, {row}.run_id, {row}.idx, {row}.finished_at "
            f"WHERE {_source(row)}{later} ON CONFLICT (cache_key, run_id, idx) "
            f"DO UPDATE SET finished_at = excluded.finished_at")


def _drop(row: str) -> str:
    return (f"DELETE FROM cache_entries WHERE cache_key = {_trial_key(row)} "
            f"AND run_id = {row}.run_id AND idx = {row}.idx")


def _triggers(*, pending: bool) -> None:
    """0009's triggers on results; with `pending`, passing over the results of the runs
    in cache_pending."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
CREATE OR REPLACE FUNCTION results_keep_cache_entries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND {_source('OLD')} THEN
    {_drop('OLD')};
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {_add('NEW', pending=pending)};
  END IF;
  RETURN NULL;
END $$""")
        return
    later = (" AND NOT EXISTS (SELECT 1 FROM cache_pending "
             "WHERE cache_pending.run_id = NEW.run_id)") if pending else ""
    when = {"INSERT": _source("NEW") + later,
            "UPDATE": f"({_source('OLD')}) OR ({_source('NEW')})"}
    body = {"INSERT": _add("NEW", pending=pending),
            "UPDATE": f"{_drop('OLD')}; {_add('NEW', pending=pending)}"}
    for event in ("INSERT", "UPDATE"):
        name = f"results_{event.lower()}_keeps_cache_entries"
        op.execute(f"DROP TRIGGER {name}")
        op.execute(f"CREATE TRIGGER {name} AFTER {event} ON results FOR EACH ROW "
                   f"WHEN {when[event]} BEGIN {body[event]}; END")


def upgrade() -> None:
    op.create_table(
        "cache_pending",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id"),
    )
    _triggers(pending=True)
    op.drop_index("ix_trials_run_key", table_name="trials")


def downgrade() -> None:
    # What the pending runs stored goes into the index first: nothing is lost to the cache.
    op.execute("INSERT INTO cache_entries (cache_key, run_id, idx, finished_at) "
               "SELECT t.cache_key, r.run_id, r.idx, r.finished_at FROM results r "
               "JOIN trials t ON t.run_id = r.run_id AND t.idx = r.idx "
               "WHERE r.run_id IN (SELECT run_id FROM cache_pending) "
               "AND r.status = 'ok' AND r.cacheable "
               "ON CONFLICT (cache_key, run_id, idx) DO NOTHING")
    _triggers(pending=False)
    op.drop_table("cache_pending")
    op.create_index("ix_trials_run_key", "trials", ["run_id", "key"], unique=True)
