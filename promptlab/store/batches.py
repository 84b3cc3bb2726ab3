"""The provider batches of a run: a mixin of `Store` (see promptlab/batch).

A batch's row is written the moment the provider has its id, before any polling, so a
resumed run polls the same batches and sends nothing twice. Trials are kept as ranges
(``[[first, last], ...]`` in ``idx_json``), a few hundred bytes for a batch of 50,000.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, inspect, select, update

from promptlab.store.tables import StoredBatch

__all__ = ["BatchInfo", "BatchQueries", "as_ranges", "from_ranges"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def as_ranges(indexes: Iterable[int]) -> list[list[int]]:
    """Sorted trial indexes as [first, last] ranges."""
    out: list[list[int]] = []
    for i in sorted(indexes):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def from_ranges(ranges: Sequence[Sequence[int]]) -> list[int]:
    return [i for first, last in ranges for i in range(first, last + 1)]


@dataclass(frozen=True)
class BatchInfo:
    run_id: str
    number: int
    model_alias: str
    api: str
    round: int
    status: str
    batch_id: str | None
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    results_url: str | None
    request_count: int
    completed_count: int
    failed_count: int
    indexes: tuple[int, ...]
    error: str | None
    created_at: datetime
    updated_at: datetime
    ingested_at: datetime | None

    @property
    def live(self) -> bool:
        """Sent and not yet read back: resume polls it."""
        return self.ingested_at is None and self.batch_id is not None


_FIELDS = ("status", "batch_id", "input_file_id", "output_file_id", "error_file_id",
           "results_url", "completed_count", "failed_count", "error", "ingested_at")


class BatchQueries:
    """Reads and writes of the `batches` table."""

    engine: Engine

    def add_batch(self, run_id: str, *, model_alias: str, api: str, round: int,
                  indexes: Sequence[int], status: str, batch_id: str | None,
                  input_file_id: str | None = None, results_url: str | None = None) -> int:
        """Record a batch the provider has accepted; returns its number within the run."""
        now = _now()
        with self.engine.begin() as conn:
            number = int(conn.scalar(select(func.coalesce(func.max(StoredBatch.number), 0))
                                     .where(StoredBatch.run_id == run_id)) or 0) + 1
            conn.execute(insert(StoredBatch).values(
                run_id=run_id, number=number, model_alias=model_alias, api=api, round=round,
                status=status, batch_id=batch_id, input_file_id=input_file_id,
                output_file_id=None, error_file_id=None, results_url=results_url,
                request_count=len(indexes), completed_count=0, failed_count=0,
                idx_json=json.dumps(as_ranges(indexes)), error=None, created_at=now,
                updated_at=now, ingested_at=None))
        return number

    def update_batch(self, run_id: str, number: int, **values: Any) -> None:
        """Change a batch's status, file ids, counts or error (the names of `BatchInfo`)."""
        unknown = set(values) - set(_FIELDS)
        if unknown:
            raise ValueError(f"not a batch field: {sorted(unknown)}")
        with self.engine.begin() as conn:
            conn.execute(update(StoredBatch).where(StoredBatch.run_id == run_id,
                                                   StoredBatch.number == number)
                         .values(updated_at=_now(), **values))

    def mark_ingested(self, run_id: str, number: int) -> None:
        self.update_batch(run_id, number, ingested_at=_now())

    def batches(self, run_id: str | None = None) -> list[BatchInfo]:
        """A run's batches in the order sent (every run's, newest run first, without one)."""
        stmt = select(StoredBatch)
        if run_id is not None:
            stmt = stmt.where(StoredBatch.run_id == run_id).order_by(StoredBatch.number)
        else:
            stmt = stmt.order_by(StoredBatch.created_at.desc(), StoredBatch.number)
        with self.engine.connect() as conn:
            # A database at 0005 (read-only opens accept it, never migrating) has no batches.
            if not inspect(conn).has_table(StoredBatch.__tablename__):
                return []
            rows = conn.execute(stmt).all()
        return [BatchInfo(
            run_id=r.run_id, number=r.number, model_alias=r.model_alias, api=r.api,
            round=r.round, status=r.status, batch_id=r.batch_id, input_file_id=r.input_file_id,
            output_file_id=r.output_file_id, error_file_id=r.error_file_id,
            results_url=r.results_url, request_count=r.request_count,
            completed_count=r.completed_count, failed_count=r.failed_count,
            indexes=tuple(from_ranges(json.loads(r.idx_json))), error=r.error,
            created_at=r.created_at, updated_at=r.updated_at, ingested_at=r.ingested_at)
            for r in rows]
