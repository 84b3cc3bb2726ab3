"""The dry run: how many calls a plan makes, how many the cache answers, tokens and cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from promptlab.batch.choice import batched_models
from promptlab.cache import fingerprint
from promptlab.experiment.prepare import Prepared
from promptlab.grid import Plan
from promptlab.store import Store

__all__ = ["Estimate", "estimate"]

CHUNK = 2000


@dataclass
class Estimate:
    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)
    first_messages: list[dict[str, str]] = field(default_factory=list)
    first_params: dict[str, Any] = field(default_factory=dict)
    batch_calls: int = 0  # calls to send by batch (run.batch), priced at the batch price


def estimate(prepared: Prepared, store: Store | None, cache: bool = True) -> Estimate:
    """Walk the plan once; input tokens ~ characters / 4, output tokens = max_tokens or 256.

    Cached calls cost nothing; the estimate counts them apart. With run.batch, the calls
    of batched models are counted in `batch_calls` and cost the batch price.
    """
    spec = prepared.spec
    batched = batched_models(spec)
    plan = Plan(spec)
    est = Estimate()
    rendered: dict[tuple[str, int], tuple[list[dict[str, str]], int]] = {}
    chunk: list[tuple[str, str, int, int, float]] = []

    def flush() -> None:
        hits = (store.lookup_cache([c[0] for c in chunk])
                if store is not None and cache else {})
        for key, alias, tin, tout, cost in chunk:
            m = est.by_model.setdefault(alias, {"calls": 0, "cached": 0, "input_tokens": 0,
                                                "output_tokens": 0, "cost_usd": 0.0})
            est.calls += 1
            m["calls"] += 1
            if key in hits:
                est.cached += 1
                m["cached"] += 1
                continue
            if alias in batched:
                est.batch_calls += 1
                m["batch_calls"] = m.get("batch_calls", 0) + 1
            est.input_tokens += tin
            est.output_tokens += tout
            est.cost_usd += cost
            m["input_tokens"] += tin
            m["output_tokens"] += tout
            m["cost_usd"] += cost
        chunk.clear()

    for trial in plan:
        memo = rendered.get((trial.prompt.name, trial.row.index))
        if memo is None:
            messages = prepared.renderer.render(trial.prompt, trial.row, spec.dataset.name)
            chars = sum(len(m["content"]) for m in messages)
            memo = (messages, chars // 4 + 4 * len(messages))
            if len(rendered) < 200_000:
                rendered[(trial.prompt.name, trial.row.index)] = memo
        messages, tin = memo
        if trial.index == 0:
            est.first_messages, est.first_params = messages, dict(trial.params)
        tout = int(trial.params.get("max_tokens") or trial.params.get("max_completion_tokens")
                   or 256)
        model = trial.model
        cost = (tin * model.input_per_mtok + tout * model.output_per_mtok) / 1e6
        if model.alias in batched:
            cost *= model.batch_discount
        chunk.append((fingerprint(model, messages, trial.params, trial.repeat), model.alias,
                      tin, tout, cost))
        if len(chunk) >= CHUNK:
            flush()
    flush()
    return est
