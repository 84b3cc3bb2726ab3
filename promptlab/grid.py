"""The plan: models x prompts x grid points x dataset rows x repeats, expanded lazily.

Order is deterministic (the order above, grid keys sorted, values as written) and any
trial can be built from its index alone, so a million-trial plan costs no memory and the
first and last trials are O(1).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from promptlab.canonical import canonical_json, sha256_hex
from promptlab.spec import ExperimentSpec, Trial

__all__ = ["Plan", "ShardPlan", "grid_points", "shard_of", "trial_key"]


def grid_points(params: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    keys = sorted(params)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(params[k] for k in keys))]


def trial_key(model_json: str, prompt_json: str, params: dict[str, Any], row_id: str,
              row_json: str, repeat: int, params_json: str | None = None) -> str:
    """sha256 of the canonical JSON of what defines a trial.

    That is ``{"model", "params", "prompt", "repeat", "row": {"data", "id"}}``; the JSON
    pieces may come in already canonical (`params_json`) so a plan makes each once.
    """
    params_json = params_json if params_json is not None else canonical_json(params)
    text = (f'{{"model":{model_json},"params":{params_json},"prompt":{prompt_json},'
            f'"repeat":{repeat},"row":{{"data":{row_json},"id":{canonical_json(row_id)}}}}}')
    return sha256_hex(text)


class Plan:
    """Lazily expanded trials of an experiment."""

    def __init__(self, spec: ExperimentSpec) -> None:
        self.spec = spec
        self.points = grid_points(spec.grid.params)
        self.repeats = spec.grid.repeats
        self._model_json = [canonical_json(m.identity()) for m in spec.models]
        self._prompt_json = [canonical_json(p.identity()) for p in spec.prompts]
        self._row_json: dict[int, str] = {}
        self._params: dict[tuple[int, int], tuple[dict[str, Any], str]] = {}
        self._dims = (len(spec.models), len(spec.prompts), len(self.points),
                      len(spec.dataset.rows), self.repeats)

    def __len__(self) -> int:
        n = 1
        for d in self._dims:
            n *= d
        return n

    def trial(self, index: int) -> Trial:
        """The trial at a position of the plan (negative indexes count from the end)."""
        total = len(self)
        if index < 0:
            index += total
        if not 0 <= index < total:
            raise IndexError(index)
        rest = index
        coords = []
        for d in reversed(self._dims):
            coords.append(rest % d)
            rest //= d
        r, row_i, point_i, prompt_i, model_i = coords
        return self._build(index, model_i, prompt_i, point_i, row_i, r)

    def __iter__(self) -> Iterator[Trial]:
        return self.of_models(range(self._dims[0]))

    def of_models(self, models: Iterable[int]) -> Iterator[Trial]:
        """The trials of these models (by position in the spec), in plan order."""
        nm, np_, ng, nr, nrep = self._dims
        per_model = np_ * ng * nr * nrep
        for mi in models:
            index = mi * per_model
            for pi in range(np_):
                for gi in range(ng):
                    for ri in range(nr):
                        for rep in range(nrep):
                            yield self._build(index, mi, pi, gi, ri, rep)
                            index += 1

    def _build(self, index: int, mi: int, pi: int, gi: int, ri: int, rep: int) -> Trial:
        model = self.spec.models[mi]
        row = self.spec.dataset.rows[ri]
        shared = self._params.get((mi, gi))
        if shared is None:  # one shared dict per model and grid point: treat as read-only
            p = {**model.params, **self.points[gi]}
            shared = self._params[(mi, gi)] = (p, canonical_json(p))
        params, params_json = shared
        row_json = self._row_json.get(ri)
        if row_json is None:
            row_json = canonical_json(row.data)
            if len(self._row_json) < 20_000:
                self._row_json[ri] = row_json
        key = trial_key(self._model_json[mi], self._prompt_json[pi], params, row.id, row_json,
                        rep, params_json)
        return Trial(index=index, key=key, model=model, prompt=self.spec.prompts[pi],
                     params=params, row=row, repeat=rep)


def shard_of(index: int, shards: int) -> int:
    """The shard a trial belongs to: by index, strided, so every shard gets an even mix of
    models, prompts and grid points (and no endpoint is one shard's alone)."""
    return index % shards


class ShardPlan:
    """The trials of one shard of a plan (``shard_of(index) == shard``), built by index."""

    def __init__(self, plan: Plan, shard: int, shards: int) -> None:
        if not 0 <= shard < shards:
            raise IndexError(shard)
        self.plan, self.shard, self.shards = plan, shard, shards
        self.indexes = range(shard, len(plan), shards)

    def __len__(self) -> int:
        return len(self.indexes)

    def __iter__(self) -> Iterator[Trial]:
        return (self.plan.trial(i) for i in self.indexes)

    def of_models(self, models: Iterable[int]) -> Iterator[Trial]:
        """This shard's trials of these models (by position in the spec), in plan order."""
        per_model = len(self.plan) // max(len(self.plan.spec.models), 1)
        for mi in models:
            start = mi * per_model
            first = start + (self.shard - start) % self.shards
            yield from (self.plan.trial(i) for i in range(first, start + per_model,
                                                          self.shards))
