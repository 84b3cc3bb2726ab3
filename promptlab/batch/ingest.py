"""Reading a batch's results back: each line becomes a trial's record (its attempt holds
the JSONL request line, redacted, and the result line), or a retry.

Lines are handled one at a time as they stream in, so memory stays flat however long the
file; the records go to the run's `BatchWriter`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

from promptlab.cache import estimate_tokens, fingerprint_from_parts
from promptlab.grid import Plan
from promptlab.providers import ProviderRequest, get_provider
from promptlab.providers.base import BatchItem, BatchLines, Provider, has_batch_api
from promptlab.redaction import Scrubber, redact_headers
from promptlab.runner.records import Call, Outcome, Recorder
from promptlab.spec import ExperimentSpec, ModelSpec, Trial
from promptlab.store import Record, utcnow
from promptlab.templates import Renderer

__all__ = ["Calls", "Ingest", "custom_id", "index_of"]


def custom_id(idx: int) -> str:
    """A trial's id in a batch (Anthropic allows ``[a-zA-Z0-9_-]{1,64}``)."""
    return f"t{idx}"


def index_of(cid: object) -> int | None:
    text = str(cid)
    if text.startswith("t") and text[1:].isdigit():
        return int(text[1:])
    return None


def at_batch_price(model: ModelSpec) -> ModelSpec:
    d = model.batch_discount
    return replace(model, input_per_mtok=model.input_per_mtok * d,
                   output_per_mtok=model.output_per_mtok * d)


class Calls:
    """Builds a trial's call (rendered, its request built, its fingerprint) and batch line,
    as the runner would, priced at the batch price."""

    def __init__(self, spec: ExperimentSpec, renderer: Renderer, recorder: Recorder,
                 keys: dict[str, str | None]) -> None:
        self.spec = spec
        self.plan = Plan(spec)
        self.renderer = renderer
        self.recorder = recorder
        self.keys = keys
        self.providers: dict[str, Provider] = {m.alias: get_provider(m.provider)
                                               for m in spec.models}
        self._priced = {m.alias: at_batch_price(m) for m in spec.models}
        self.batch_lines: dict[str, BatchLines] = {
            alias: cast(BatchLines, p) for alias, p in self.providers.items()
            if has_batch_api(p)}

    def call(self, trial: Trial, started: dict[int, int]) -> Call:
        messages, messages_json, messages_canonical = self.renderer.render_with_json(
            trial.prompt, trial.row, self.spec.dataset.name)
        model = trial.model
        request = ProviderRequest(model.model, messages, trial.params)
        http = self.providers[model.alias].build_request(model, request, self.keys[model.alias])
        params_canonical = self.recorder.params_json(trial.params)[1]
        key = fingerprint_from_parts(model, messages_canonical, params_canonical, trial.repeat)
        prior = started.get(trial.index)
        priced = replace(trial, model=self._priced[model.alias])
        return Call(priced, http, messages, key, estimate_tokens(messages, trial.params),
                    prior or 0, prior is not None, messages_json)

    def line(self, call: Call) -> dict[str, Any]:
        provider = self.batch_lines[call.trial.model.alias]
        return provider.batch_line(call.trial.model, call.http, custom_id(call.trial.index))


class Ingest:
    """One result line at a time -> a Record (final) or an index to send again."""

    def __init__(self, run_id: str, calls: Calls, recorder: Recorder, scrub: Scrubber,
                 started: dict[int, int], max_attempts: int) -> None:
        self.run_id = run_id
        self.calls = calls
        self.recorder = recorder
        self.scrub = scrub
        self.started = started
        self.max_attempts = max_attempts
        self.tries: dict[int, int] = {}  # attempts made by this process, per trial
        self.kept: dict[int, list[dict[str, Any]]] = {}  # attempts of trials sent again
        self._headers: dict[str, str] = {}

    def take(self, idx: int, item: BatchItem, raw: str, url: str) -> Record | None:
        """The record of trial `idx` for this result; None when it goes in a new batch."""
        trial = self.calls.plan.trial(idx)
        call = self.calls.call(trial, self.started)
        model = call.trial.model
        tries = self.tries[idx] = self.tries.get(idx, 0) + 1
        headers = self._headers.get(model.alias)
        if headers is None:
            headers = self._headers[model.alias] = json.dumps(
                redact_headers(call.http.headers, call.http.secret_headers))
        line = json.dumps(self.calls.line(call), ensure_ascii=False)
        attempt = {
            "run_id": self.run_id, "idx": idx, "number": call.prior_attempts + tries,
            "started_at": utcnow(), "duration_ms": 0.0, "url": self.scrub(url) or "",
            "request_headers_json": headers, "request_body": self.scrub(line) or "",
            "status_code": item.status_code, "response_body": self.scrub(raw),
            "error_kind": item.error_kind, "error": self.scrub(item.error),
            "retry_after_ms": None}
        attempts = [*self.kept.pop(idx, []), attempt]
        if item.response is None and item.retryable and (
                call.prior_attempts + tries) < self.max_attempts:
            self.kept[idx] = attempts
            return None
        outcome = Outcome(item.response, attempts, None,
                          None if item.response is not None else "batch_" + str(
                              item.error_kind or "error")[:14],
                          None if item.response is not None else self.scrub(item.error))
        return self.recorder.record(call, outcome)
