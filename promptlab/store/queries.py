"""Reads about runs and their results: what `runs`, `show`, reports and compare see.

A mixin of `Store`; every method reads through the store's engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, select

from promptlab.errors import UserError
from promptlab.store.tables import Artifact, Attempt, Result, Run, RunArtifact, Score, StoredTrial

__all__ = ["RunInfo", "RunQueries", "ScoredResult"]


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
class ScoredResult:
    """One finished trial as reports and compare read it: identity, outcome, scores."""

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


ScoreMap = dict[int, dict[str, tuple[float | None, bool | None]]]


def _info(run: Any, counts: dict[str, tuple[int, int]]) -> RunInfo:
    done, errors = counts.get(run.id, (0, 0))
    return RunInfo(id=run.id, name=run.name, status=run.status, created_at=run.created_at,
                   finished_at=run.finished_at, planned=run.planned, done=done, errors=errors,
                   config=json.loads(run.config_json), overrides=json.loads(run.overrides_json),
                   manifest=json.loads(run.manifest_json), sweep_id=run.sweep_id,
                   parent_run_id=run.parent_run_id)


def resolve_ref(engine: Engine, id_col: Any, created_col: Any, ref: str, what: str,
                fix: str, empty: str, latest_of: Any = None) -> str:
    """A full id from an id, a unique prefix (text, not a LIKE pattern), or ``latest``
    (among the rows `latest_of` admits); a user error naming `what` and `fix` when there
    is none or more than one."""
    with engine.connect() as conn:
        if ref in ("latest", "last"):
            query = select(id_col).order_by(created_col.desc()).limit(1)
            if latest_of is not None:
                query = query.where(latest_of)
            ids = list(conn.scalars(query))
            if not ids:
                raise UserError(empty)
        else:
            ids = list(conn.scalars(select(id_col).where(
                id_col.startswith(ref, autoescape=True)).limit(2)))
    if not ids:
        raise UserError(f"{what} '{ref}' not found in this database; {fix}")
    if len(ids) > 1:
        raise UserError(f"{what} '{ref}' is ambiguous; give more characters of the id")
    return str(ids[0])


class RunQueries:
    engine: Engine
    cell_counts: Callable[[Sequence[str]], dict[str, tuple[int, int]]]  # store/cells.py

    def _counts(self, run_ids: list[str]) -> dict[str, tuple[int, int]]:
        if not run_ids:
            return {}
        known = self.cell_counts(run_ids)  # runs with report cells: no rows to count
        run_ids = [r for r in run_ids if r not in known]
        if not run_ids:
            return known
        stmt = (select(Result.run_id, func.count(), func.sum(
            (Result.status != "ok").cast(type_=Result.idx.type)))
            .where(Result.run_id.in_(run_ids)).group_by(Result.run_id))
        with self.engine.connect() as conn:
            return {**known, **{r[0]: (int(r[1]), int(r[2] or 0)) for r in conn.execute(stmt)}}

    def runs(self, name: str | None = None, status: str | None = None, limit: int = 50,
             since: datetime | None = None, until: datetime | None = None,
             sweep: str | None = None) -> list[RunInfo]:
        """Runs, newest first, filtered."""
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
        with self.engine.connect() as conn:
            runs = list(conn.execute(stmt))
        counts = self._counts([r.id for r in runs])
        return [_info(r, counts) for r in runs]

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id, a unique id prefix, or ``latest``."""
        # `latest` is never an LLM judge's run: those are made while their run is scored.
        return resolve_ref(self.engine, Run.id, Run.created_at, ref, "run",
                           "list runs with 'promptlab runs' (or pass --db)",
                           "no runs in this database; run 'promptlab run' first",
                           latest_of=~Run.manifest_json.startswith('{"judge_for"'))

    def run(self, run_id: str) -> RunInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(Run).where(Run.id == run_id)).first()
        if row is None:
            raise UserError(f"run '{run_id}' not found; list runs with 'promptlab runs'")
        return _info(row, self._counts([run_id]))

    def status_counts(self, run_id: str) -> tuple[dict[str, int], int, int]:
        """(results by status, HTTP attempts, cache hits) of a run."""
        with self.engine.connect() as conn:
            statuses = {str(k): int(v) for k, v in conn.execute(
                select(Result.status, func.count()).where(Result.run_id == run_id)
                .group_by(Result.status)).all()}
            attempts = conn.scalar(select(func.count()).select_from(Attempt).where(
                Attempt.run_id == run_id))
            cached = conn.scalar(select(func.count()).select_from(Result).where(
                Result.run_id == run_id, Result.cache_hit.is_(True)))
        return statuses, int(attempts or 0), int(cached or 0)

    def common_errors(self, run_id: str, limit: int = 3) -> list[tuple[str, str, int]]:
        """The run's most frequent errors: (kind, message cut to one line, count)."""
        stmt = (select(Result.error_kind, Result.error, func.count().label("n"))
                .where(Result.run_id == run_id, Result.status != "ok")
                .group_by(Result.error_kind, Result.error).order_by(func.count().desc())
                .limit(limit))
        with self.engine.connect() as conn:
            return [(str(kind or "error"), " ".join(str(error or "").split())[:200], int(n))
                    for kind, error, n in conn.execute(stmt)]

    def scorer_failures(self, run_id: str) -> list[tuple[str, int, int, str]]:
        """Scorers that failed on some of the run's results: (scorer, failed, scored, the
        commonest error), in scorer order. A report shows a failed score as no value."""
        failed = Score.value.is_(None) & Score.passed.is_(None)  # an error, or NaN
        with self.engine.connect() as conn:
            counts = conn.execute(
                select(Score.scorer, func.count(), func.sum(case((failed, 1), else_=0)))
                .where(Score.run_id == run_id).group_by(Score.scorer).order_by(Score.scorer))
            out = []
            for scorer, scored, n in counts:
                if not n:
                    continue
                detail = conn.execute(
                    select(Score.detail_json, func.count().label("k"))
                    .where(Score.run_id == run_id, Score.scorer == scorer, failed)
                    .group_by(Score.detail_json).order_by(func.count().desc()).limit(1)
                ).scalar()
                try:
                    error = str(json.loads(detail or "{}").get("error") or "no value (NaN, "
                                "or nothing a score can be made of)")
                except (ValueError, AttributeError):
                    error = str(detail)
                out.append((str(scorer), int(n), int(scored), " ".join(error.split())[:200]))
        return out

    def result_count(self, run_id: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Result)
                                   .where(Result.run_id == run_id)) or 0)

    def artifacts(self, run_id: str) -> dict[str, str]:
        """The run's templates and dataset files by name (``template:ask.j2``)."""
        stmt = (select(RunArtifact.name, Artifact.content)
                .join(Artifact, Artifact.sha256 == RunArtifact.sha256)
                .where(RunArtifact.run_id == run_id))
        with self.engine.connect() as conn:
            return {name: content for name, content in conn.execute(stmt)}

    def scores(self, run_id: str, max_idx: int | None = None) -> ScoreMap:
        """Scores by trial index and scorer: (value, passed)."""
        out: ScoreMap = {}
        stmt = select(Score.idx, Score.scorer, Score.value, Score.passed).where(
            Score.run_id == run_id)
        if max_idx is not None:
            stmt = stmt.where(Score.idx <= max_idx)
        with self.engine.connect() as conn:
            for idx, scorer, value, passed in conn.execute(stmt):
                out.setdefault(idx, {})[scorer] = (value,
                                                   None if passed is None else bool(passed))
        return out

    def score_details(self, run_id: str) -> dict[int, dict[str, dict[str, Any]]]:
        """Scores by trial index and scorer, with each score's detail (export)."""
        out: dict[int, dict[str, dict[str, Any]]] = {}
        stmt = select(Score.idx, Score.scorer, Score.value, Score.passed, Score.detail_json
                      ).where(Score.run_id == run_id)
        with self.engine.connect() as conn:
            for idx, scorer, value, passed, detail in conn.execute(stmt):
                out.setdefault(idx, {})[scorer] = {
                    "value": value, "passed": passed,
                    "detail": json.loads(detail) if detail else None}
        return out

    def scorer_names(self, run_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.scalars(select(Score.scorer).where(Score.run_id == run_id)
                                       .distinct()))

    def results(self, run_id: str) -> Iterator[ScoredResult]:
        """Every finished trial of a run with its scores, in plan order."""
        stmt = (select(StoredTrial.idx, StoredTrial.model_alias, StoredTrial.prompt,
                       StoredTrial.params_json, StoredTrial.row_id, StoredTrial.repeat,
                       Result.status, Result.output, Result.latency_ms, Result.input_tokens,
                       Result.output_tokens, Result.cost_usd, Result.cache_hit, Result.ttft_ms)
                .join(Result, (Result.run_id == StoredTrial.run_id)
                      & (Result.idx == StoredTrial.idx))
                .where(StoredTrial.run_id == run_id).order_by(StoredTrial.idx))
        params_cache: dict[str, dict[str, Any]] = {}
        scores = self.scores(run_id)
        with self.engine.connect() as conn:
            for r in conn.execute(stmt).yield_per(10_000):
                params = params_cache.get(r.params_json)
                if params is None:
                    params = json.loads(r.params_json)
                    params_cache[r.params_json] = params
                yield ScoredResult(r.idx, r.model_alias, r.prompt, params, r.row_id, r.repeat,
                                   r.status, r.output, r.latency_ms, r.input_tokens,
                                   r.output_tokens, r.cost_usd, bool(r.cache_hit), r.ttft_ms,
                                   scores.get(r.idx, {}))
