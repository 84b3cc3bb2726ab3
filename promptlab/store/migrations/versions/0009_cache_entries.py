"""cache_entries: the cache's index, one row per fresh ok result (a source: never a cache
hit's copy) under its request fingerprint, and the triggers on results that keep it

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26

A cache lookup joined every trial with the fingerprint to its result and sorted them by
time; each fully cached re-run added one more trial per fingerprint (a copy, never a
source), so lookups slowed with every re-run (12 re-runs of 10,000 trials: 0.17 -> 0.54 s).
The fingerprint index on trials goes: nothing else reads trials by fingerprint.
The index is derived, never the record: the triggers keep it in the writing transaction
whatever code writes results (a run, a resume, a batch, a merge, a deletion), and this
migration fills it from the rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _source(row: str) -> str:
    """Whether results row `row` is one the cache answers from: fresh and ok."""
    return f"{row}.status = 'ok' AND {row}.cacheable"


def _trial_key(row: str) -> str:
    """The fingerprint of results row `row`'s trial (there while the row is: a trial is
    deleted only after its result, and a result inserted only after its trial)."""
    return (f"(SELECT cache_key FROM trials WHERE trials.run_id = {row}.run_id "
            f"AND trials.idx = {row}.idx)")


def _add(row: str) -> str:
    """Results row `row` (NEW) as an entry, if it is a source."""
    return (f"INSERT INTO cache_entries (cache_key, run_id, idx, finished_at) "
            f"SELECT {_trial_key(row)}, {row}.run_id, {row}.idx, {row}.finished_at "
            f"WHERE {_source(row)} ON CONFLICT (cache_key, run_id, idx) "
            f"DO UPDATE SET finished_at = excluded.finished_at")


def _drop(row: str) -> str:
    """Results row `row` (OLD) no longer an entry."""
    return (f"DELETE FROM cache_entries WHERE cache_key = {_trial_key(row)} "
            f"AND run_id = {row}.run_id AND idx = {row}.idx")


# When each event's trigger runs (SQLite and PostgreSQL alike): a cache hit's copy or an
# error never runs one.
_WHEN = {"INSERT": _source("NEW"), "UPDATE": f"({_source('OLD')}) OR ({_source('NEW')})",
         "DELETE": _source("OLD")}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # In the order a writer takes them (its trial rows, then its results): a run of an
        # older promptlab still writing is waited for. Taken as the DDL below needed them
        # (results for the trigger, then trials for the index), a writer holding trials and
        # wanting results deadlocked with the upgrade.
        op.execute("LOCK TABLE trials, results IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "cache_entries",
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("cache_key", "run_id", "idx"),
        sqlite_with_rowid=False,  # the rows are their key: one B-tree, not two
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()
    op.execute("INSERT INTO cache_entries (cache_key, run_id, idx, finished_at) "
               "SELECT t.cache_key, r.run_id, r.idx, r.finished_at FROM trials t "
               "JOIN results r ON r.run_id = t.run_id AND r.idx = t.idx "
               "WHERE r.status = 'ok' AND r.cacheable")
    # Only the cache's lookups read trials by fingerprint; every trial row paid for this
    # index with a write to a random page (a cached re-run's 10,000 trial rows: 0.095 ->
    # 0.070 s of writer CPU without it).
    op.drop_index("ix_trials_cache_key", table_name="trials")


def _sqlite_triggers() -> None:
    body = {"INSERT": _add("NEW"), "UPDATE": f"{_drop('OLD')}; {_add('NEW')}",
            "DELETE": _drop("OLD")}
    for event, when in _WHEN.items():
        op.execute(f"CREATE TRIGGER results_{event.lower()}_keeps_cache_entries AFTER {event} "
                   f"ON results FOR EACH ROW WHEN {when} BEGIN {body[event]}; END")


def _postgres_triggers() -> None:
    op.execute(f"""
CREATE FUNCTION results_keep_cache_entries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND {_source('OLD')} THEN
    {_drop('OLD')};
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {_add('NEW')};
  END IF;
  RETURN NULL;
END $$""")
    for event, when in _WHEN.items():
        op.execute(f"CREATE TRIGGER results_{event.lower()}_keeps_cache_entries AFTER {event} "
                   f"ON results FOR EACH ROW WHEN ({when}) "
                   f"EXECUTE FUNCTION results_keep_cache_entries()")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for event in _WHEN:
        name = f"results_{event.lower()}_keeps_cache_entries"
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON results" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS results_keep_cache_entries()")
    op.create_index("ix_trials_cache_key", "trials", ["cache_key"])
    op.drop_table("cache_entries")
