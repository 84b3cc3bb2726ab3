"""Score a run: every scorer on every ok result, stored per trial (name, value, passed,
detail). Used at the end of `run`/`resume` and by `promptlab score` (re-scoring stored
outputs with the current scorers, without calling the models again)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from promptlab.scoring.judge import JudgeSpec, run_judge
from promptlab.scoring.scorers import Score, Scorer, build_scorer
from promptlab.spec import ExperimentSpec
from promptlab.store import Store
from promptlab.templates import Renderer

__all__ = ["ScorerSet", "build_scorers", "score_run"]


@dataclass(frozen=True)
class ScorerSet:
    """Scorers by name, each with the prompts it applies to (None: every prompt), and the
    judges' resolved specs by scorer name."""

    scorers: dict[str, tuple[Scorer, frozenset[str] | None]]
    judges: dict[str, JudgeSpec] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.scorers)


def build_scorers(config: dict[str, Any], where: str) -> ScorerSet:
    """Scorers from a plain config's ``scorers`` and each prompt's own ``scorers``."""
    out: dict[str, tuple[Scorer, frozenset[str] | None]] = {}
    for name, cfg in (config.get("scorers") or {}).items():
        out[name] = (build_scorer(name, cfg, where), None)
    for prompt, pcfg in (config.get("prompts") or {}).items():
        for name, cfg in (pcfg.get("scorers") or {}).items():
            scorer, prompts = out.get(name, (build_scorer(name, cfg, where), frozenset()))
            out[name] = (scorer, None if prompts is None else prompts | {prompt})
    return ScorerSet(out)


def score_run(store: Store, run_id: str, scorers: ScorerSet, spec: ExperimentSpec,
              renderer: Renderer) -> int:
    """Score every ok result; returns the number of scores written."""
    if not scorers:
        return 0
    items = store.ok_outputs(run_id)
    rows: list[dict[str, Any]] = []
    for name, (scorer, prompts) in scorers.scorers.items():
        mine = [it for it in items if prompts is None or it["prompt"] in prompts]
        if scorer.fn is None:
            scores = run_judge(store, spec, renderer, run_id, name, scorers.judges[name], mine)
        else:
            scores = {it["idx"]: scorer(it["output"], it["row"], it["params"], it)
                      for it in mine}
        rows += [_row(run_id, idx, name, s) for idx, s in scores.items()]
    store.replace_scores(run_id, list(scorers.scorers), rows)
    return len(rows)


def _row(run_id: str, idx: int, name: str, s: Score) -> dict[str, Any]:
    return {"run_id": run_id, "idx": idx, "scorer": name, "value": s.value, "passed": s.passed,
            "detail_json": json.dumps(s.detail, ensure_ascii=False, default=str)}
