"""Score a run: every scorer on every ok result, stored per trial (name, value, passed,
detail). Used at the end of `run`/`resume` and by `promptlab score` (re-scoring stored
outputs with the current scorers, without calling the models again)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from promptlab.experiment import Prepared
from promptlab.scoring.scorers import Score, Scorer, build_scorer
from promptlab.store import Store
from promptlab.store.models import Result, TrialRow

__all__ = ["ScorerSet", "build_scorers", "score_run"]


@dataclass(frozen=True)
class ScorerSet:
    """Scorers by name, each with the prompts it applies to (None: every prompt)."""

    scorers: dict[str, tuple[Scorer, frozenset[str] | None]]

    def __bool__(self) -> bool:
        return bool(self.scorers)


def build_scorers(config: dict[str, Any], where: str) -> ScorerSet:
    out: dict[str, tuple[Scorer, frozenset[str] | None]] = {}
    for name, cfg in (config.get("scorers") or {}).items():
        out[name] = (build_scorer(name, cfg, where), None)
    for prompt, pcfg in (config.get("prompts") or {}).items():
        for name, cfg in (pcfg.get("scorers") or {}).items():
            scorer, prompts = out.get(name, (build_scorer(name, cfg, where), frozenset()))
            out[name] = (scorer, None if prompts is None else prompts | {prompt})
    return ScorerSet(out)


def _items(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    stmt = (select(TrialRow.idx, TrialRow.prompt, TrialRow.row_json, TrialRow.params_json,
                   TrialRow.messages_json, Result.output)
            .join(Result, (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx))
            .where(TrialRow.run_id == run_id, Result.status == "ok"))
    with engine.connect() as conn:
        return [{"idx": r.idx, "prompt": r.prompt, "row": json.loads(r.row_json),
                 "params": json.loads(r.params_json), "messages": json.loads(r.messages_json),
                 "output": r.output or ""} for r in conn.execute(stmt)]


def score_run(engine: Engine, run_id: str, prepared: Prepared, scorers: ScorerSet) -> int:
    """Score every ok result; returns the number of scores written."""
    from promptlab.scoring.judge import run_judge

    if not scorers:
        return 0
    items = _items(engine, run_id)
    rows: list[dict[str, Any]] = []
    for name, (scorer, prompts) in scorers.scorers.items():
        mine = [it for it in items if prompts is None or it["prompt"] in prompts]
        if scorer.fn is None:
            scores = run_judge(engine, prepared, run_id, name, scorer.config, mine)
        else:
            scores = {it["idx"]: scorer(it["output"], it["row"], it["params"]) for it in mine}
        rows += [_row(run_id, idx, name, s) for idx, s in scores.items()]
    Store(engine).replace_scores(run_id, list(scorers.scorers), rows)
    return len(rows)


def _row(run_id: str, idx: int, name: str, s: Score) -> dict[str, Any]:
    return {"run_id": run_id, "idx": idx, "scorer": name, "value": s.value, "passed": s.passed,
            "detail_json": json.dumps(s.detail, ensure_ascii=False, default=str)}
