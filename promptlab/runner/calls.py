"""From a planned trial to a call: rendered and fingerprinted first (`Pending`), and built
into its HTTP request only when the cache does not answer it (most of a cached re-run's
cost was building requests it never sent).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from promptlab.cache import estimate_tokens, fingerprint_from_parts
from promptlab.canonical import canonical_json
from promptlab.providers import ProviderRequest, get_provider
from promptlab.providers.base import Provider
from promptlab.providers.tools import fingerprint_params, request_options
from promptlab.runner.records import Call, Recorder
from promptlab.spec import ExperimentSpec, Trial
from promptlab.templates import Renderer

__all__ = ["FIRST_CHUNK", "CHUNK", "CallBuilder", "Pending", "estimated_cost"]

FIRST_CHUNK = 64  # small, so the first calls go out at once
CHUNK = 1024  # trials looked up in the cache with one query


class Pending(NamedTuple):
    """A trial rendered and fingerprinted, before the cache is asked."""

    trial: Trial
    messages: list[dict[str, str]]
    messages_json: str
    cache_key: str
    prior: int | None  # its stored attempt count, when resumed


class CallBuilder:
    """Renders, fingerprints and builds the requests of one spec's trials."""

    def __init__(self, spec: ExperimentSpec, renderer: Renderer, recorder: Recorder) -> None:
        self.spec = spec
        self.renderer = renderer
        self.recorder = recorder
        self.providers: dict[str, Provider] = {
            m.alias: get_provider(m.provider) for m in spec.models}
        self.keys = {m.alias: (os.environ.get(m.api_key_env) if m.api_key_env else None)
                     for m in spec.models}

    def pending(self, trial: Trial, started: dict[int, int]) -> Pending:
        messages, messages_json, messages_canonical = self.renderer.render_with_json(
            trial.prompt, trial.row, self.spec.dataset.name)
        hashed = fingerprint_params(trial.params, request_options(trial.model, trial.prompt))
        params_canonical = (self.recorder.params_json(trial.params)[1] if hashed is trial.params
                            else canonical_json(hashed))
        key = fingerprint_from_parts(trial.model, messages_canonical, params_canonical,
                                     trial.repeat)
        return Pending(trial, messages, messages_json, key, started.get(trial.index))

    def chunks(self, trials: Iterable[Trial], started: dict[int, int]) -> Iterator[list[Pending]]:
        """These trials pending, a chunk at a time: a small one first."""
        chunk: list[Pending] = []
        size = FIRST_CHUNK
        for trial in trials:
            chunk.append(self.pending(trial, started))
            if len(chunk) >= size:
                yield chunk
                chunk, size = [], CHUNK
        if chunk:
            yield chunk

    def call(self, p: Pending) -> Call:
        trial, model = p.trial, p.trial.model
        request = ProviderRequest(model.model, p.messages, trial.params,
                                  **request_options(model, trial.prompt))
        http = self.providers[model.alias].build_request(model, request, self.keys[model.alias])
        return Call(trial, http, p.messages, p.cache_key, estimate_tokens(p.messages, trial.params),
                    p.prior or 0, p.prior is not None, p.messages_json)


def estimated_cost(call: Call) -> float:
    """USD a call may cost, for the budget: its estimated tokens in, max_tokens (or 256) out."""
    m = call.trial.model
    if not (m.input_per_mtok or m.output_per_mtok):
        return 0.0
    out = int(call.trial.params.get("max_tokens") or 256)
    return ((call.est_tokens - out) * m.input_per_mtok + out * m.output_per_mtok) / 1e6
