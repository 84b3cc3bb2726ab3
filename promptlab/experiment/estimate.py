"""The dry run: how many calls a plan makes, how many the cache answers, tokens and cost.

A plan is models x prompts x grid points x rows x repeats, and a call's estimate depends
only on its (model, prompt, row) cell (input tokens) and its (model, grid point) params
(output tokens): the totals are per-cell numbers multiplied out, not a walk over every
trial. Only when the store holds results that could answer a request are fingerprints
made, from canonical pieces, and checked against the stored keys held in memory when they
are fewer than the plan's calls, else looked up a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from promptlab.batch.choice import batched_models
from promptlab.cache import fingerprints_of
from promptlab.canonical import canonical_json
from promptlab.experiment.prepare import Prepared
from promptlab.grid import grid_points
from promptlab.store import Store

__all__ = ["Estimate", "estimate"]

CHUNK = 5000


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


def _out_tokens(params: dict[str, Any]) -> int:
    return int(params.get("max_tokens") or params.get("max_completion_tokens") or 256)


def estimate(prepared: Prepared, store: Store | None, cache: bool = True) -> Estimate:
    """Input tokens ~ characters / 4 (+4 a message), output tokens = max_tokens or 256.

    Cached calls cost nothing; the estimate counts them apart. With run.batch, the calls
    of batched models are counted in `batch_calls` and cost the batch price.
    """
    spec = prepared.spec
    batched = batched_models(spec)
    points = grid_points(spec.grid.params)
    rows = spec.dataset.rows
    repeats = spec.grid.repeats
    est = Estimate()
    # (prompt, row) -> (canonical messages, input tokens); rendered once per plan.
    cells: dict[tuple[int, int], tuple[str, int]] = {}
    for pi, prompt in enumerate(spec.prompts):
        for ri, row in enumerate(rows):
            messages, _, canonical = prepared.renderer.render_with_json(
                prompt, row, spec.dataset.name
            )
            chars = sum(len(m["content"]) for m in messages)
            cells[(pi, ri)] = (canonical, chars // 4 + 4 * len(messages))
            if pi == 0 and ri == 0:
                est.first_messages = messages
    total = len(cells) * len(points) * repeats * len(spec.models)
    # Few stored answers (or none): hold them all, look nothing up per chunk.
    known = store.cache_entries(total) if store is not None and cache else set()
    for model in spec.models:
        m = est.by_model.setdefault(
            model.alias,
            {"calls": 0, "cached": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
        )
        params = [{**model.params, **p} for p in points]
        if not est.first_params and params:
            est.first_params = dict(params[0])
        outs = [_out_tokens(p) for p in params]
        tin_sum = sum(tin for _, tin in cells.values())
        calls = len(cells) * len(params) * repeats
        tin_total = tin_sum * len(params) * repeats
        tout_total = sum(outs) * len(cells) * repeats
        cached_in = cached_out = cached = 0
        if (known is None or known) and calls:
            assert store is not None
            for tin, tout in _hits(store, known, model, cells, params, outs, repeats):
                cached += 1
                cached_in += tin
                cached_out += tout
        tin_sent, tout_sent = tin_total - cached_in, tout_total - cached_out
        cost = (tin_sent * model.input_per_mtok + tout_sent * model.output_per_mtok) / 1e6
        if model.alias in batched:
            cost *= model.batch_discount
            if calls - cached:
                m["batch_calls"] = calls - cached
            est.batch_calls += calls - cached
        m.update(
            calls=calls,
            cached=cached,
            input_tokens=tin_sent,
            output_tokens=tout_sent,
            cost_usd=cost,
        )
        est.calls += calls
        est.cached += cached
        est.input_tokens += tin_sent
        est.output_tokens += tout_sent
        est.cost_usd += cost
    return est


def _hits(
    store: Store,
    known: set[str] | None,
    model: Any,
    cells: dict[tuple[int, int], tuple[str, int]],
    params: list[dict[str, Any]],
    outs: list[int],
    repeats: int,
) -> Iterator[tuple[int, int]]:
    """(input, output) tokens of each of this model's calls the cache would answer."""
    canon = [canonical_json(p) for p in params]
    chunk: list[tuple[str, int, int]] = []

    def flush() -> Iterator[tuple[int, int]]:
        found = known if known is not None else store.cached_keys([k for k, _, _ in chunk])
        for key, tin, tout in chunk:
            if key in found:
                yield tin, tout
        chunk.clear()

    for (_pi, _ri), (messages, tin) in cells.items():
        fingerprint = fingerprints_of(model, messages)
        for gi, pc in enumerate(canon):
            for rep in range(repeats):
                chunk.append((fingerprint(pc, rep), tin, outs[gi]))
                if len(chunk) >= CHUNK:
                    yield from flush()
    yield from flush()
