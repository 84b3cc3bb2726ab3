"""Set-wise writes of the batch path: a mixin of `Store` (see promptlab/batch).

A batch's trials are written when they are sent, not when their results come back: the
trial rows, and one *pending* attempt per trial (its request line, redacted; error_kind
``batch_pending``, no response yet), in chunks, before the batch is created on the server.
Reading the results back then completes each pending attempt and inserts the result, a few
thousand trials per transaction with one executemany per statement, with no rendering.

A crash between writing the pending attempts and creating the batch leaves them in place;
the next submission of those trials reuses them instead of adding a second pending attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, func, insert, select, update

from promptlab.store.replace import insert_results
from promptlab.store.tables import Attempt, StoredTrial

if TYPE_CHECKING:
    from promptlab.store.store import Record

__all__ = ["PENDING", "BatchRecording"]

PENDING = "batch_pending"  # the error_kind of an attempt sent in a batch, not read back yet
_IN = 500  # values per IN (...) list


def _max_numbers(conn: Any, run_id: str, idxs: Sequence[int],
                 pending_only: bool) -> dict[int, int]:
    """The highest attempt number per trial (of its pending attempts, with `pending_only`)."""
    out: dict[int, int] = {}
    for i in range(0, len(idxs), _IN):
        stmt = (select(Attempt.idx, func.max(Attempt.number))
                .where(Attempt.run_id == run_id, Attempt.idx.in_(idxs[i:i + _IN]))
                .group_by(Attempt.idx))
        if pending_only:
            stmt = stmt.where(Attempt.error_kind == PENDING)
        out.update(conn.execute(stmt).all())
    return out


class _NotAllPending(Exception):
    """Some attempt read back has no pending attempt to complete (rolls the batch back)."""


_COMPLETE = update(Attempt).where(Attempt.run_id == bindparam("b_run"),
                                  Attempt.idx == bindparam("b_idx"))


def _set(attempt: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """An attempt read back as the parameters of `_COMPLETE`: the columns to set, and the
    trial (and more) to find the row by."""
    out = {k: v for k, v in attempt.items() if k not in ("run_id", "idx", "number")}
    out.update(b_run=attempt["run_id"], b_idx=attempt["idx"], **keys)
    return out


def _complete_pending(conn: Any, attempts: Sequence[dict[str, Any]]) -> bool:
    """Complete each trial's one pending attempt with what was read back; False when some
    trial had none (or the database cannot count the rows an executemany changed)."""
    if not conn.dialect.supports_sane_multi_rowcount:
        return False
    changed = conn.execute(_COMPLETE.where(Attempt.error_kind == PENDING),
                           [_set(a) for a in attempts]).rowcount
    return bool(changed == len(attempts))


class BatchRecording:
    """The batch path's writes: pending attempts when sending, results when reading back."""

    engine: Engine

    def add_pending(self, run_id: str, trials: Sequence[dict[str, Any]],
                    attempts: Sequence[dict[str, Any]]) -> None:
        """Trial rows (of trials not stored yet) and one pending attempt per trial, numbered
        after its stored attempts; a trial that already has a pending attempt keeps it."""
        if not attempts:
            return
        with self.engine.begin() as conn:
            if trials:
                conn.execute(insert(StoredTrial), list(trials))
            idxs = [a["idx"] for a in attempts]
            pending = _max_numbers(conn, run_id, idxs, pending_only=True)
            numbers = _max_numbers(conn, run_id, idxs, pending_only=False)
            rows = [{**a, "number": numbers.get(a["idx"], 0) + 1, "error_kind": PENDING}
                    for a in attempts if a["idx"] not in pending]
            if rows:
                conn.execute(insert(Attempt), rows)

    def write_ingested(self, records: Sequence[Record]) -> None:
        """Results read back from a batch, in one transaction: each record's one attempt
        completes the trial's pending attempt (or is added after its attempts when it has
        none), and its result, if any, is inserted. All or none; raises what the database
        said (`BatchWriter` retries a refused batch record by record)."""
        if not records:
            return
        attempts = [a for r in records for a in r.attempts]
        results = [r.result for r in records if "idx" in r.result]  # none: sent again
        try:
            with self.engine.begin() as conn:
                if attempts and not _complete_pending(conn, attempts):
                    raise _NotAllPending
                if results:
                    insert_results(conn, results)
            return
        except _NotAllPending:
            pass
        with self.engine.begin() as conn:  # some without a pending attempt: one by one
            run_id = attempts[0]["run_id"]
            pending = _max_numbers(conn, run_id, [a["idx"] for a in attempts], True)
            if pending:
                conn.execute(_COMPLETE.where(Attempt.number == bindparam("b_number")), [
                    _set(a, b_number=pending[a["idx"]]) for a in attempts if a["idx"] in pending])
            missing = [a for a in attempts if a["idx"] not in pending]
            if missing:
                numbers = _max_numbers(conn, run_id, [a["idx"] for a in missing], False)
                conn.execute(insert(Attempt), [
                    {"started_at": datetime.now(UTC).replace(tzinfo=None),
                     "duration_ms": 0.0, "request_headers_json": "{}",
                     "request_body": "", "retry_after_ms": None, **a,
                     "number": numbers.get(a["idx"], 0) + 1} for a in missing])
            if results:
                insert_results(conn, results)

    def attempt_numbers(self, run_id: str, idxs: Sequence[int]) -> dict[int, int]:
        """How many attempts each of these trials has (its highest attempt number)."""
        with self.engine.connect() as conn:
            return _max_numbers(conn, run_id, list(idxs), pending_only=False)
