"""The LLM judge: a model from the config grades outputs with a judge template.

Its calls go through the same runner as any other, as a child run of the judged run, so
they are retried, cached and recorded like every call.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from sqlalchemy import Engine

from promptlab.config.loading import validate
from promptlab.config.schema import ModelConfig
from promptlab.errors import UserError
from promptlab.experiment import Prepared, _model
from promptlab.ids import new_run_id
from promptlab.runner import Runner
from promptlab.scoring.scorers import Score, parse_judgement
from promptlab.servers.managed import managed_servers, resolve_fallbacks
from promptlab.spec import (
    DatasetSpec,
    ExperimentSpec,
    GridSpec,
    MessageSpec,
    PromptSpec,
    Row,
    RunSettings,
)
from promptlab.store import Store
from promptlab.store.queries import iter_results

__all__ = ["judge_model_config", "run_judge"]


def judge_model_config(alias: str, models: dict[str, Any], config_dir: Path) -> dict[str, Any]:
    """The judge's model config: one of the run's models, or experiments/models/ALIAS.yaml."""
    if alias in models:
        return dict(models[alias])
    path = config_dir / "models" / f"{alias}.yaml"
    if not path.is_file():
        raise UserError(f"scorer judge model '{alias}': no such model in the run or in "
                        f"{path}; create it or pick another alias")
    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path))
    plain = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(plain, dict)
    return {str(k): v for k, v in plain.items()}


def run_judge(engine: Engine, parent: Prepared, parent_run_id: str, name: str,
              cfg: dict[str, Any], items: list[dict[str, Any]]) -> dict[int, Score]:
    """Grade `items` (idx, output, row, params, messages) in a child run; scores by idx."""
    if not items:
        return {}
    loaded = parent.loaded
    model_cfg = cfg.get("model_config") or judge_model_config(
        cfg["model"], loaded.config.get("models", {}), loaded.config_dir)
    checked = validate(OmegaConf.create({"models": {f"judge-{cfg['model']}": model_cfg}}),
                       loaded.choices, loaded.config_dir)
    alias, model_cfg = next(iter(checked["models"].items()))
    model = _model(alias, model_cfg, loaded)
    source = parent.renderer.load_source(cfg["template"], f"scorers.{name}.template")
    prompt = PromptSpec(f"judge:{name}", (MessageSpec("user", source, cfg["template"]),))
    rows = tuple(Row(str(it["idx"]), i, {
        "output": it["output"], "row": it["row"], "params": it["params"],
        "input": "\n\n".join(m["content"] for m in it["messages"]), **it["row"],
    }) for i, it in enumerate(items))
    run = parent.spec.run
    spec = ExperimentSpec(f"{parent.spec.name}:judge:{name}", (model,), (prompt,),
                          DatasetSpec(f"judged:{parent_run_id}", None, rows), GridSpec({}, 1),
                          RunSettings(concurrency=run.concurrency, timeout_s=run.timeout_s,
                                      progress=False, max_attempts=run.max_attempts,
                                      backoff_base_s=run.backoff_base_s,
                                      backoff_max_s=run.backoff_max_s, cache=run.cache))
    renderer = parent.renderer  # the same templates; the judge prompt has its own name
    for row in rows[:1]:
        renderer.render(prompt, row, "judged outputs")
    store = Store(engine)
    child_id = new_run_id()
    store.create_run(run_id=child_id, name=spec.name, planned=len(rows),
                     config={"judge": {**cfg, "model_config": model_cfg}, "scorer": name},
                     overrides=[], manifest={"judge_for": parent_run_id},
                     artifacts={f"template:{cfg['template']}": source},
                     parent_run_id=parent_run_id)
    judged = Prepared(spec=spec, renderer=renderer, loaded=loaded)
    status = "failed"
    try:
        with managed_servers(resolve_fallbacks(spec, lambda _: None), {}) as live:
            asyncio.run(Runner(replace(judged, spec=live), store, child_id).run())
        status = "completed"
    finally:
        store.finish_run(child_id, status)
    scores: dict[int, Score] = {}
    by_index = {r.index: r for r in rows}
    for res in iter_results(engine, child_id):
        idx = int(by_index[res.idx].id)
        if res.status != "ok" or res.output is None:
            scores[idx] = Score(None, None, {"error": f"judge call {res.status}",
                                             "judge_run": child_id})
            continue
        s = parse_judgement(res.output, cfg.get("threshold"))
        scores[idx] = Score(s.value, s.passed, {**s.detail, "judge_run": child_id,
                                                "judge_idx": res.idx})
    return scores
