"""Read-side queries: the one module reports, `runs` and `show` read the database through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from promptlab.errors import UserError
from promptlab.store.models import Result, Run, Score, TrialRow

__all__ = ["RunInfo", "ResultRow", "list_runs", "get_run", "iter_results", "resolve_run_id",
           "scores_of", "scorer_names"]


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    planned: int
    done: int
    errors: int
    config: dict[str, Any]
    overrides: list[str]
    manifest: dict[str, Any]
    sweep_id: str | None = None
    parent_run_id: str | None = None


@dataclass(frozen=True)
class ResultRow:
    idx: int
    model_alias: str
    prompt: str
    params: dict[str, Any]
    row_id: str
    repeat: int
    status: str
    output: str | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    cache_hit: bool
    ttft_ms: float | None = None
    scores: dict[str, tuple[float | None, bool | None]] = field(default_factory=dict)


def _counts(engine: Engine, run_ids: list[str]) -> dict[str, tuple[int, int]]:
    if not run_ids:
        return {}
    stmt = (select(Result.run_id, func.count(), func.sum(
        (Result.status != "ok").cast(type_=Result.idx.type)))
        .where(Result.run_id.in_(run_ids)).group_by(Result.run_id))
    with engine.connect() as conn:
        return {r[0]: (int(r[1]), int(r[2] or 0)) for r in conn.execute(stmt)}


def _info(run: Any, counts: dict[str, tuple[int, int]]) -> RunInfo:
    done, errors = counts.get(run.id, (0, 0))
    return RunInfo(id=run.id, name=run.name, status=run.status, created_at=run.created_at,
                   finished_at=run.finished_at, planned=run.planned, done=done, errors=errors,
                   config=json.loads(run.config_json), overrides=json.loads(run.overrides_json),
                   manifest=json.loads(run.manifest_json), sweep_id=run.sweep_id,
                   parent_run_id=run.parent_run_id)


def list_runs(engine: Engine, name: str | None = None, status: str | None = None,
              limit: int = 50, since: datetime | None = None, until: datetime | None = None,
              sweep: str | None = None) -> list[RunInfo]:
    stmt = select(Run).order_by(Run.created_at.desc()).limit(limit)
    if since:
        stmt = stmt.where(Run.created_at >= since)
    if until:
        stmt = stmt.where(Run.created_at < until)
    if sweep:
        stmt = stmt.where(Run.sweep_id == sweep)
    if name:
        stmt = stmt.where(Run.name.contains(name))
    if status:
        stmt = stmt.where(Run.status == status)
    with engine.connect() as conn:
        runs = list(conn.execute(stmt))
    counts = _counts(engine, [r.id for r in runs])
    return [_info(r, counts) for r in runs]


def resolve_run_id(engine: Engine, ref: str) -> str:
    """A full run id from an id, a unique id prefix, or ``latest``."""
    with engine.connect() as conn:
        if ref in ("latest", "last"):
            found = conn.scalar(select(Run.id).order_by(Run.created_at.desc()).limit(1))
            if found is None:
                raise UserError("no runs in this database; run 'promptlab run' first")
            return str(found)
        ids = list(conn.scalars(select(Run.id).where(Run.id.startswith(ref)).limit(2)))
    if not ids:
        raise UserError(f"run '{ref}' not found in this database; list runs with "
                        "'promptlab runs' (or pass --db)")
    if len(ids) > 1:
        raise UserError(f"run '{ref}' is ambiguous; give more characters of the id")
    return str(ids[0])


def get_run(engine: Engine, run_id: str) -> RunInfo:
    with engine.connect() as conn:
        run = conn.execute(select(Run).where(Run.id == run_id)).first()
    if run is None:
        raise UserError(f"run '{run_id}' not found; list runs with 'promptlab runs'")
    return _info(run, _counts(engine, [run_id]))


def scores_of(engine: Engine, run_id: str) -> dict[int, dict[str, tuple[float | None,
                                                                         bool | None]]]:
    out: dict[int, dict[str, tuple[float | None, bool | None]]] = {}
    stmt = select(Score.idx, Score.scorer, Score.value, Score.passed).where(
        Score.run_id == run_id)
    with engine.connect() as conn:
        for idx, scorer, value, passed in conn.execute(stmt):
            out.setdefault(idx, {})[scorer] = (value, None if passed is None else bool(passed))
    return out


def scorer_names(engine: Engine, run_id: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(Score.scorer).where(Score.run_id == run_id)
                                   .distinct()))


def iter_results(engine: Engine, run_id: str) -> Iterator[ResultRow]:
    stmt = (select(TrialRow.idx, TrialRow.model_alias, TrialRow.prompt, TrialRow.params_json,
                   TrialRow.row_id, TrialRow.repeat, Result.status, Result.output,
                   Result.latency_ms, Result.input_tokens, Result.output_tokens,
                   Result.cost_usd, Result.cache_hit, Result.ttft_ms)
            .join(Result, (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx))
            .where(TrialRow.run_id == run_id).order_by(TrialRow.idx))
    params_cache: dict[str, dict[str, Any]] = {}
    scores = scores_of(engine, run_id)
    with engine.connect() as conn:
        for r in conn.execute(stmt).yield_per(10_000):
            params = params_cache.get(r.params_json)
            if params is None:
                params = json.loads(r.params_json)
                params_cache[r.params_json] = params
            yield ResultRow(r.idx, r.model_alias, r.prompt, params, r.row_id, r.repeat,
                            r.status, r.output, r.latency_ms, r.input_tokens,
                            r.output_tokens, r.cost_usd, bool(r.cache_hit), r.ttft_ms,
                            scores.get(r.idx, {}))
