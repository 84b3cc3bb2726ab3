"""The LLM judge: a model grades outputs with a judge template.

Its calls go through a `Session` like any other run's, as a child run of the judged run,
so they are retried, cached and recorded like every call. The judge arrives resolved: a
`JudgeSpec` with its model spec and template source, built by the experiment layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from promptlab.runner.session import NewRun, Session
from promptlab.scoring.scorers import Score, parse_judgement
from promptlab.spec import (
    DatasetSpec,
    ExperimentSpec,
    GridSpec,
    MessageSpec,
    ModelSpec,
    PromptSpec,
    Row,
)
from promptlab.store import Store
from promptlab.templates import Renderer

__all__ = ["JudgeSpec", "run_judge"]


@dataclass(frozen=True)
class JudgeSpec:
    """A judge scorer, resolved: its model, template and the config recorded with it."""

    model: ModelSpec
    template: str
    source: str
    threshold: float | None = None
    config: dict[str, Any] = field(default_factory=dict, hash=False)


def run_judge(store: Store, parent: ExperimentSpec, renderer: Renderer, parent_run_id: str,
              name: str, judge: JudgeSpec, items: list[dict[str, Any]]) -> dict[int, Score]:
    """Grade `items` (idx, output, row, params, messages) in a child run; scores by idx."""
    if not items:
        return {}
    prompt = PromptSpec(f"judge:{name}", (MessageSpec("user", judge.source, judge.template),))
    rows = tuple(Row(str(it["idx"]), i, {
        "output": it["output"], "row": it["row"], "params": it["params"],
        "input": "\n\n".join(m["content"] for m in it["messages"]), **it["row"],
    }) for i, it in enumerate(items))
    spec = ExperimentSpec(f"{parent.name}:judge:{name}", (judge.model,), (prompt,),
                          DatasetSpec(f"judged:{parent_run_id}", None, rows), GridSpec({}, 1),
                          replace(parent.run, progress=False, max_calls=None,
                                  max_cost_usd=None))
    for row in rows[:1]:
        renderer.render(prompt, row, "judged outputs")
    outcome = Session(store, spec, renderer).run(NewRun(
        config={"judge": judge.config, "scorer": name}, manifest={"judge_for": parent_run_id},
        artifacts={f"template:{judge.template}": judge.source}, parent_run_id=parent_run_id))
    child_id = outcome.run_id
    scores: dict[int, Score] = {}
    by_index = {r.index: r for r in rows}
    for res in store.results(child_id):
        idx = int(by_index[res.idx].id)
        if res.status != "ok" or res.output is None:
            scores[idx] = Score(None, None, {"error": f"judge call {res.status}",
                                             "judge_run": child_id})
            continue
        s = parse_judgement(res.output, judge.threshold)
        scores[idx] = Score(s.value, s.passed, {**s.detail, "judge_run": child_id,
                                                "judge_idx": res.idx})
    return scores
