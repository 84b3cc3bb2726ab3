"""Reads for reports: results grouped by model, prompt, params (and row or repeat).

A mixin of `Store`. Counts and sums are GROUP BY queries; only latencies (for
percentiles) and mean-type score values come back row by row, as plain DBAPI tuples (no
per-row objects on a million rows). `reports.aggregate` turns them into group statistics.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from sqlalchemy import Engine, case, func, select

from promptlab.store.tables import Result, Score, StoredTrial

__all__ = ["GroupedRow", "ReportQueries", "SUMS", "raw_rows"]

# ("sums", key..., calls, ok, cache hits, ok with tool calls, input tokens, output tokens,
#  reasoning tokens, cached input tokens, cache-write tokens, cost)
# ("timings", key..., latency_ms, ttft_ms)
# ("passes", key..., scorer, n, passed)
# ("values", key..., scorer, value), in (run, trial index) order (bootstraps resample it)
# where key is (model alias, prompt, params JSON[, row id][, repeat]).
GroupedRow = tuple[Literal["sums", "timings", "passes", "values"], tuple[Any, ...]]


# What "sums" adds up per group, after the count (store/cells.py keeps the same per cell).
SUMS = (
    func.sum(case((Result.status == "ok", 1), else_=0)),
    func.sum(case((Result.cache_hit.is_(True), 1), else_=0)),
    func.sum(case(((Result.status == "ok") & Result.tool_calls_json.is_not(None)
                   & (Result.tool_calls_json != "[]"), 1), else_=0)),
    func.sum(Result.input_tokens), func.sum(Result.output_tokens),
    func.sum(Result.reasoning_tokens), func.sum(Result.cached_input_tokens),
    func.sum(Result.cache_write_tokens), func.sum(Result.cost_usd),
)


def raw_rows(conn: Any, stmt: Any) -> Iterator[tuple[Any, ...]]:
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(compiled.params[name] for name in compiled.positiontup)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        while True:
            chunk = cursor.fetchmany(50_000)
            if not chunk:
                return
            yield from chunk
    finally:
        cursor.close()


class ReportQueries:
    engine: Engine

    def grouped_rows(self, run_ids: Sequence[str], with_row: bool = False,
                     with_repeat: bool = False) -> Iterator[GroupedRow]:
        """The rows a report aggregates, tagged by kind (see `GroupedRow`)."""
        extra = ([StoredTrial.row_id] if with_row else []) + (
            [StoredTrial.repeat] if with_repeat else [])
        key_cols = [StoredTrial.model_alias, StoredTrial.prompt, StoredTrial.params_json,
                    *extra]
        ids = list(run_ids)
        on_result = (Result.run_id == StoredTrial.run_id) & (Result.idx == StoredTrial.idx)
        on_score = (Score.run_id == StoredTrial.run_id) & (Score.idx == StoredTrial.idx)
        sums = (select(*key_cols, func.count(), *SUMS)
                .join(Result, on_result).where(StoredTrial.run_id.in_(ids))
                .group_by(*key_cols))
        timings = (select(*key_cols, Result.latency_ms, Result.ttft_ms).join(Result, on_result)
                   .where(StoredTrial.run_id.in_(ids), Result.status == "ok",
                          Result.cache_hit.is_(False)))
        passes = (select(*key_cols, Score.scorer, func.count(),
                         func.sum(case((Score.passed.is_(True), 1), else_=0)))
                  .join(Score, on_score)
                  .where(StoredTrial.run_id.in_(ids), Score.passed.is_not(None))
                  .group_by(*key_cols, Score.scorer))
        values = (select(*key_cols, Score.scorer, Score.value).join(Score, on_score)
                  .where(StoredTrial.run_id.in_(ids), Score.passed.is_(None),
                         Score.value.is_not(None))
                  .order_by(Score.run_id, Score.idx))
        with self.engine.connect() as conn:
            for row in conn.execute(sums):
                yield "sums", tuple(row)
            for raw in raw_rows(conn, timings):
                yield "timings", raw
            for row in conn.execute(passes):
                yield "passes", tuple(row)
            for raw in raw_rows(conn, values):
                yield "values", raw
