"""Merging databases: per-shard SQLite files into one (`promptlab merge a.db b.db -o all.db`).

Rows are matched by their keys: runs by id, trials, attempts, results and scores by
(run id, index[, number | scorer]), artifacts by sha256. A row already present is skipped
when it is the same, and the merge is refused (nothing written) when it differs: two
shards that recorded different results for one trial, or two runs with one id and
different experiments. A run's row is the same when its experiment (config sha256) is;
after the merge a run is completed when every planned trial has a result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, select, tuple_, update
from sqlalchemy.engine import Connection

from promptlab.errors import UserError
from promptlab.store.tables import Artifact, Attempt, Result, Run, RunArtifact, Score, StoredTrial

__all__ = ["MergeCounts", "StoreMerge"]

_CHUNK = 500
# Parents before children, so foreign keys hold at every step.
_TABLES = [Run, Artifact, RunArtifact, StoredTrial, Attempt, Result, Score]
# Columns that may differ between two copies of the same run row.
_RUN_VOLATILE = {"status", "finished_at", "owner_host", "owner_pid", "owner_token",
                 "heartbeat_at", "created_at", "manifest_json"}


@dataclass
class MergeCounts:
    added: dict[str, int] = field(default_factory=dict)
    same: dict[str, int] = field(default_factory=dict)


def _rows(conn: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    result = conn.execute(select(table).order_by(*table.primary_key.columns))
    while chunk := result.fetchmany(_CHUNK):
        yield [dict(r._mapping) for r in chunk]


class StoreMerge:
    engine: Engine
    refresh_cells: Callable[..., bool]  # CellQueries (store/cells.py)

    def merge_from(self, source: Engine, where: str, *, complete: bool = True) -> MergeCounts:
        """Copy every row of `source` that this database lacks; refuse a conflicting one.
        With `complete`, a run whose every planned trial now has a result is completed
        (off for a run whose owner finishes it, as the launcher of shards does)."""
        counts = MergeCounts()
        touched: set[str] = set()
        with source.connect() as src, self.engine.begin() as dst:
            for model in _TABLES:
                table = model.__table__
                keys = [c.name for c in table.primary_key.columns]
                added = same = 0
                for chunk in _rows(src, table):
                    pks = [tuple(r[k] for k in keys) for r in chunk]
                    key_cols = tuple_(*(table.c[k] for k in keys))
                    found = [dict(r._mapping) for r in dst.execute(
                        select(table).where(key_cols.in_(pks)))]
                    have = {tuple(r[k] for k in keys): r for r in found}
                    new = []
                    for pk, row in zip(pks, chunk, strict=True):
                        old = have.get(pk)
                        if old is None:
                            new.append(row)
                            continue
                        ignore = _RUN_VOLATILE if model is Run else set()
                        diff = [k for k in row if k not in ignore and row[k] != old[k]]
                        if diff:
                            raise UserError(
                                f"{where}: {table.name} {'/'.join(map(str, pk))} differs "
                                f"from the one already merged ({', '.join(diff[:3])}); "
                                "nothing of that file was merged")
                        same += 1
                    if new:
                        dst.execute(table.insert(), new)
                        if model in (Result, Score):
                            touched.update(r["run_id"] for r in new)
                    added += len(new)
                counts.added[table.name] = added
                counts.same[table.name] = same
            if complete:
                self._complete_runs(dst)
        for run_id in sorted(touched):  # the report cells the merged rows dropped
            self.refresh_cells(run_id)
        return counts

    @staticmethod
    def _complete_runs(conn: Connection) -> None:
        """A merged run whose every planned trial has a result is completed."""
        from sqlalchemy import func

        done = (select(func.count()).select_from(Result)
                .where(Result.run_id == Run.id).scalar_subquery())
        conn.execute(update(Run).where(done >= Run.planned, Run.status != "completed")
                     .values(status="completed", owner_pid=None, owner_token=None))
