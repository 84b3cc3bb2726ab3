"""Report cells: a run's results and scores summed per (model, prompt, params) cell.

A mixin of `Store`. A report over a million results reads a few thousand cell rows instead
of a million result rows. The cells are a cache, never the record, and they are correct
whatever writes: triggers (migration 0008) drop a run's cells in the same transaction as
any insert, update or delete of its results, and its score cells on any write to its
scores. Without cells a report takes the row-by-row path (`grouping.py`), which gives the
same numbers; `refresh_cells` fills them again, called where a write finishes (a run's
end, `score`, a rating, a merge). Reads never write, so read-only commands stay so.

Everything a report prints is kept exactly: counts and sums per cell; the ok, non-cached
latencies and TTFTs as sorted float64 arrays (percentiles need every value); pass counts
per scorer (Wilson needs only k and n); mean-type score values with their trial indexes,
so groups that merge cells resample them in (run, index) order as the row path does.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, exists, func, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from promptlab.store.grouping import SUMS, raw_rows
from promptlab.store.tables import ReportCell, ReportCellScore, Result, Score, StoredTrial

__all__ = ["CellQueries", "Cells"]

_KEY = (StoredTrial.model_alias, StoredTrial.prompt, StoredTrial.params_json)
_ON_RESULT = (Result.run_id == StoredTrial.run_id) & (Result.idx == StoredTrial.idx)
_ON_SCORE = (Score.run_id == StoredTrial.run_id) & (Score.idx == StoredTrial.idx)


@dataclass(frozen=True)
class Cells:
    """The cells of some runs, as plain tuples.

    ``results``: (run_id, model alias, prompt, params JSON, calls, ok, cached, ok with tool
    calls, input, output, reasoning, cached input, cache-write tokens, cost, latencies,
    ttfts), latencies and ttfts sorted ``array('d')``.
    ``scores``: (run_id, model alias, prompt, params JSON, scorer, n, passed, indexes
    ``array('q')``, values ``array('d')``).
    """

    results: list[tuple[Any, ...]]
    scores: list[tuple[Any, ...]]


def _floats(data: bytes) -> array[float]:
    out = array("d")
    out.frombytes(data)
    return out


def _ints(data: bytes) -> array[int]:
    out = array("q")
    out.frombytes(data)
    return out


class CellQueries:
    engine: Engine

    def cells(self, run_ids: Sequence[str]) -> Cells | None:
        """The runs' cells, or None when any run lacks them (or the schema predates them):
        the caller then aggregates the rows themselves."""
        results: list[tuple[Any, ...]] = []
        scores: list[tuple[Any, ...]] = []
        try:
            with self.engine.connect() as conn:
                for run_id in run_ids:
                    part = self._result_cells(conn, run_id)
                    score_part = self._score_cells(conn, run_id)
                    if part is None or score_part is None:
                        return None
                    results += part
                    scores += score_part
        except DBAPIError:  # a database older than 0008, opened read-only
            return None
        return Cells(results, scores)

    def cell_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(results, errors) of those runs that have cells, without counting their rows."""
        c = ReportCell
        stmt = (select(c.run_id, func.sum(c.calls), func.sum(c.calls - c.ok))
                .where(c.run_id.in_(list(run_ids))).group_by(c.run_id))
        try:
            with self.engine.connect() as conn:
                return {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(stmt)}
        except DBAPIError:  # a database older than 0008, opened read-only
            return {}

    @staticmethod
    def _result_cells(conn: Connection, run_id: str) -> list[tuple[Any, ...]] | None:
        c = ReportCell
        rows = conn.execute(select(
            c.run_id, c.model_alias, c.prompt, c.params_json, c.calls, c.ok, c.cached,
            c.tool_call_ok, c.input_tokens, c.output_tokens, c.reasoning_tokens,
            c.cached_input_tokens, c.cache_write_tokens, c.cost_usd, c.latencies, c.ttfts)
            .where(c.run_id == run_id).order_by(c.cell)).all()
        if not rows and conn.scalar(select(exists().where(Result.run_id == run_id))):
            return None
        return [(*r[:14], _floats(r[14]), _floats(r[15])) for r in rows]

    @staticmethod
    def _score_cells(conn: Connection, run_id: str) -> list[tuple[Any, ...]] | None:
        c = ReportCellScore
        rows = conn.execute(select(
            c.run_id, c.model_alias, c.prompt, c.params_json, c.scorer, c.n, c.passed,
            c.idxs, c.vals).where(c.run_id == run_id).order_by(c.scorer, c.cell)).all()
        if not rows and conn.scalar(select(exists().where(Score.run_id == run_id))):
            return None
        return [(*r[:7], _ints(r[7]), _floats(r[8])) for r in rows]

    def refresh_cells(self, run_id: str, *, scores_only: bool = False) -> bool:
        """Compute the run's cells (or only its score cells) from its rows and store them,
        in one transaction that no write to the run can interleave with. False when the
        database was too busy: the cells stay missing and reports read the rows."""
        try:
            self._refresh(run_id, scores_only)
        except OperationalError:  # locked past the busy timeout: a cache, not the record
            return False
        return True

    def _refresh(self, run_id: str, scores_only: bool) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # pairs with the triggers' shared lock
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                             {"k": f"promptlab.cells:{run_id}"})
            # On SQLite this first write takes the database's write lock: nothing commits
            # between the reads below and this transaction's end.
            conn.execute(delete(ReportCellScore).where(ReportCellScore.run_id == run_id))
            _fill_score_cells(conn, run_id)
            if not scores_only:
                conn.execute(delete(ReportCell).where(ReportCell.run_id == run_id))
                _fill_result_cells(conn, run_id)


def _fill_result_cells(conn: Connection, run_id: str) -> None:
    where = StoredTrial.run_id == run_id
    sums = conn.execute(select(*_KEY, func.count(), *SUMS).join(Result, _ON_RESULT)
                        .where(where).group_by(*_KEY).order_by(*_KEY)).all()
    if not sums:
        return
    timings: dict[tuple[Any, ...], tuple[list[float], list[float]]] = {
        tuple(r[:3]): ([], []) for r in sums}
    for model, prompt, params, latency, ttft in raw_rows(conn, select(
            *_KEY, Result.latency_ms, Result.ttft_ms).join(Result, _ON_RESULT)
            .where(where, Result.status == "ok", Result.cache_hit.is_(False))):
        lat, tt = timings[(model, prompt, params)]
        if latency is not None:
            lat.append(latency)
        if ttft is not None:
            tt.append(ttft)
    rows = []
    for cell, r in enumerate(sums):
        lat, tt = timings[tuple(r[:3])]
        rows.append({
            "run_id": run_id, "cell": cell, "model_alias": r[0], "prompt": r[1],
            "params_json": r[2], "calls": r[3], "ok": r[4] or 0, "cached": r[5] or 0,
            "tool_call_ok": r[6] or 0, "input_tokens": r[7] or 0, "output_tokens": r[8] or 0,
            "reasoning_tokens": r[9] or 0, "cached_input_tokens": r[10] or 0,
            "cache_write_tokens": r[11] or 0, "cost_usd": r[12] or 0.0,
            "latencies": array("d", sorted(lat)).tobytes(),
            "ttfts": array("d", sorted(tt)).tobytes()})
    for i in range(0, len(rows), 500):
        conn.execute(insert(ReportCell), rows[i:i + 500])


def _fill_score_cells(conn: Connection, run_id: str) -> None:
    where = StoredTrial.run_id == run_id
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}

    def cell(key: tuple[Any, ...]) -> dict[str, Any]:
        c = cells.get(key)
        if c is None:
            c = cells[key] = {"n": 0, "passed": 0, "idxs": array("q"), "vals": array("d")}
        return c

    passes = (select(*_KEY, Score.scorer, func.count(),
                     func.sum(case((Score.passed.is_(True), 1), else_=0)))
              .join(Score, _ON_SCORE).where(where, Score.passed.is_not(None))
              .group_by(*_KEY, Score.scorer))
    for model, prompt, params, scorer, n, k in conn.execute(passes):
        c = cell((scorer, model, prompt, params))
        c["n"], c["passed"] = n, k or 0
    values = (select(*_KEY, Score.scorer, StoredTrial.idx, Score.value)
              .join(Score, _ON_SCORE)
              .where(where, Score.passed.is_(None), Score.value.is_not(None))
              .order_by(Score.idx))
    for model, prompt, params, scorer, idx, value in raw_rows(conn, values):
        c = cell((scorer, model, prompt, params))
        c["idxs"].append(idx)
        c["vals"].append(value)
    rows = [{"run_id": run_id, "scorer": key[0], "cell": i, "model_alias": key[1],
             "prompt": key[2], "params_json": key[3], "n": c["n"], "passed": c["passed"],
             "idxs": c["idxs"].tobytes(), "vals": c["vals"].tobytes()}
            for i, (key, c) in enumerate(sorted(cells.items()))]
    for i in range(0, len(rows), 500):
        conn.execute(insert(ReportCellScore), rows[i:i + 500])
