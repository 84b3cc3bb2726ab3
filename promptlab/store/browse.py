"""Reads for browsing (the viewer of `promptlab serve`): pages of runs and of trials.

A mixin of `Store`. Every page is a keyset page: the caller passes the last key it saw
and gets at most `limit` more, so a page of a million-trial run costs what a page of a
small one does. Trials come in plan order (``idx``) or by dataset row (``row_id, idx``,
on the index ``ix_trials_run_row``) for the matrix of rows x model/prompt/params.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select, type_coerce
from sqlalchemy.types import JSON

from promptlab.store.queries import RunInfo, _info
from promptlab.store.tables import Result, Run, Score, StoredTrial

__all__ = ["BrowseQueries", "TrialFilter"]


@dataclass(frozen=True)
class TrialFilter:
    """Which trials of a run to show. `params` values match as `compare` selectors do
    (numbers numerically, anything else as text); `differ` keeps trials whose output
    differs from another model's on the same item (prompt, row, repeat, swept params)."""

    model: str | None = None
    prompt: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    row: str | None = None
    scorer: str | None = None
    passed: bool | None = None
    text: str | None = None
    differ: bool = False


def _param_matches(value: Any, wanted: str) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value) == wanted


_ON_RESULT = (Result.run_id == StoredTrial.run_id) & (Result.idx == StoredTrial.idx)


class BrowseQueries:
    engine: Engine

    def _as_now(self, infos: list[RunInfo]) -> list[RunInfo]:  # RunOwnership's, in Store
        return infos

    def _counts(self, run_ids: list[str]) -> dict[str, tuple[int, int]]:  # RunQueries'
        raise NotImplementedError

    def runs_page(self, *, name: str | None = None, status: str | None = None,
                  sweep: str | None = None, search: str | None = None,
                  since: datetime | None = None, before: tuple[datetime, str] | None = None,
                  limit: int = 50) -> tuple[list[RunInfo], tuple[datetime, str] | None]:
        """Runs newest first after the key `before` (created_at, id), and the key of the
        next page (None on the last). A run whose owner died reads as interrupted."""
        stmt = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit + 1)
        if before is not None:
            stmt = stmt.where(or_(Run.created_at < before[0],
                                  and_(Run.created_at == before[0], Run.id < before[1])))
        if since:
            stmt = stmt.where(Run.created_at >= since)
        if sweep:
            stmt = stmt.where(Run.sweep_id == sweep)
        if name:
            stmt = stmt.where(Run.name.contains(name, autoescape=True))
        if search:
            stmt = stmt.where(or_(Run.name.icontains(search, autoescape=True),
                                  Run.id.startswith(search, autoescape=True)))
        if status in ("running", "interrupted"):  # a stored 'running' may be either
            stmt = stmt.where(Run.status.in_(["running", status]))
        elif status:
            stmt = stmt.where(Run.status == status)
        with self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        counts = self._counts([r.id for r in rows])
        infos = self._as_now([_info(r, counts) for r in rows])
        if status:
            infos = [i for i in infos if i.status == status]
        nxt = (rows[-1].created_at, rows[-1].id) if more and rows else None
        return infos, nxt

    def _where(self, run_id: str, f: TrialFilter, swept: Sequence[str]) -> list[Any]:
        conds: list[Any] = [StoredTrial.run_id == run_id]
        if f.model:
            conds.append(StoredTrial.model_alias == f.model)
        if f.prompt:
            conds.append(StoredTrial.prompt == f.prompt)
        if f.row:
            conds.append(StoredTrial.row_id == f.row)
        if f.params:
            with self.engine.connect() as conn:
                stored = list(conn.scalars(select(StoredTrial.params_json).where(
                    StoredTrial.run_id == run_id).distinct()))
            wanted = [p for p in stored if all(
                k in (d := json.loads(p)) and _param_matches(d[k], v)
                for k, v in f.params.items())]
            conds.append(StoredTrial.params_json.in_(wanted))
        if f.scorer:
            s = select(Score.idx).where(Score.run_id == StoredTrial.run_id,
                                        Score.idx == StoredTrial.idx, Score.scorer == f.scorer)
            if f.passed is not None:
                s = s.where(Score.passed.is_(f.passed))
            conds.append(exists(s))
        if f.text:
            conds.append(Result.output.icontains(f.text, autoescape=True))
        if f.differ:
            conds.append(self._differs(swept))
        return conds

    def _differs(self, swept: Sequence[str]) -> Any:
        other, other_result = StoredTrial.__table__.alias().c, Result.__table__.alias().c
        same = [other.run_id == StoredTrial.run_id, other.row_id == StoredTrial.row_id,
                other.prompt == StoredTrial.prompt, other.repeat == StoredTrial.repeat,
                other.model_alias != StoredTrial.model_alias,
                other_result.run_id == other.run_id, other_result.idx == other.idx,
                func.coalesce(other_result.output, "") != func.coalesce(Result.output, "")]
        for name in swept:  # a model's own fixed params are not part of the item
            same.append(self._param(other.params_json, name).is_not_distinct_from(
                self._param(StoredTrial.params_json, name)))
        return exists(select(other.idx).where(*same))

    def _param(self, column: Any, name: str) -> Any:
        path = "$." + json.dumps(name)
        if self.engine.dialect.name == "sqlite":
            return func.json_extract(column, path)
        return type_coerce(column, JSON)[name].as_string()  # pragma: no cover (PostgreSQL)

    def trials_page(self, run_id: str, f: TrialFilter = TrialFilter(), *,
                    swept: Sequence[str] = (), by_row: bool = False,
                    after: tuple[str, int] | int | None = None, limit: int = 100
                    ) -> tuple[list[dict[str, Any]], Any]:
        """Up to `limit` finished trials matching `f`, after the key `after` (an idx, or
        (row_id, idx) when `by_row`), with scores; and the key of the next page or None."""
        cols = (StoredTrial.idx, StoredTrial.model_alias, StoredTrial.prompt,
                StoredTrial.params_json, StoredTrial.row_id, StoredTrial.repeat,
                Result.status, Result.output, Result.error, Result.latency_ms,
                Result.cache_hit, Result.input_tokens, Result.output_tokens)
        stmt = select(*cols).join(Result, _ON_RESULT).where(*self._where(run_id, f, swept))
        if by_row:
            stmt = stmt.order_by(StoredTrial.row_id, StoredTrial.idx)
            if isinstance(after, tuple):
                stmt = stmt.where(or_(StoredTrial.row_id > after[0], and_(
                    StoredTrial.row_id == after[0], StoredTrial.idx > after[1])))
        else:
            stmt = stmt.order_by(StoredTrial.idx)
            if isinstance(after, int):
                stmt = stmt.where(StoredTrial.idx > after)
        with self.engine.connect() as conn:
            rows = list(conn.execute(stmt.limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
            scores: dict[int, dict[str, dict[str, Any]]] = {}
            if rows:
                for s in conn.execute(select(Score).where(
                        Score.run_id == run_id, Score.idx.in_([r.idx for r in rows]))):
                    scores.setdefault(s.idx, {})[s.scorer] = {
                        "value": s.value, "passed": None if s.passed is None else bool(s.passed),
                        "detail": json.loads(s.detail_json) if s.detail_json else None}
        items = [{"idx": r.idx, "model": r.model_alias, "prompt": r.prompt,
                  "params": json.loads(r.params_json), "row_id": r.row_id, "repeat": r.repeat,
                  "status": r.status, "output": r.output, "error": r.error,
                  "latency_ms": r.latency_ms, "cache_hit": bool(r.cache_hit),
                  "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                  "scores": scores.get(r.idx, {})} for r in rows]
        nxt: Any = None
        if more and rows:
            nxt = (rows[-1].row_id, rows[-1].idx) if by_row else rows[-1].idx
        return items, nxt

    def run_stamp(self, run_id: str) -> tuple[str, datetime | None] | None:
        """A run's stored status and end time (None: no such run): one primary-key read, to
        tell whether a cached view of a finished run still holds."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Run.status, Run.finished_at).where(Run.id == run_id)
                               ).first()
        return None if row is None else (str(row.status), row.finished_at)

    def score_count(self, run_id: str) -> int:
        """How many scores a run has (a cheap version stamp for cached reports)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Score)
                                   .where(Score.run_id == run_id)) or 0)
