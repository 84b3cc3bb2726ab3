"""A batch's trials, built (`Calls`), and its results read back (`Ingest`).

`Calls` renders a trial and builds its request and batch line as the runner would, priced
at the batch price; that happens once, when the trial is sent, and its trial row and
pending attempt (the JSONL request line, redacted) are stored then (store/ingest.py).

`Ingest` turns one result line into a record that completes that pending attempt with the
result line and adds the result (output, tokens, cost at the batch price), without
rendering anything again: only the trial's model, prompt and grid point are needed, and
they follow from its index. Lines are handled one at a time as they stream in, and nothing
is kept per line but the few that are retried, so memory stays flat however long the file.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

from promptlab.cache import estimate_tokens, fingerprint_from_parts
from promptlab.grid import Plan
from promptlab.providers import ProviderRequest, get_provider
from promptlab.providers.base import (
    BatchItem,
    BatchLines,
    HttpRequest,
    Provider,
    ProviderResponse,
    has_batch_api,
)
from promptlab.redaction import Scrubber, redact_headers
from promptlab.runner.records import (
    DETAIL_COLUMNS,
    Call,
    Recorder,
    RunStats,
    price,
    result_details,
)
from promptlab.spec import ExperimentSpec, ModelSpec, Trial
from promptlab.store import Record, utcnow
from promptlab.store.writer import LIMITS, BatchWriter, fit_float, fit_int, fit_text
from promptlab.templates import Renderer

__all__ = ["Calls", "Ingest", "IngestWriter", "custom_id", "index_of"]


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
                 keys: dict[str, str | None], scrub: Scrubber) -> None:
        self.scrub = scrub
        self._headers: dict[str, str] = {}
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

    def priced(self, alias: str) -> ModelSpec:
        return self._priced[alias]

    def pending(self, call: Call, line: bytes, url: str,
                first_round: bool) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The rows stored as a trial is sent in a batch: its trial row (in its first round,
        unless stored already) and its pending attempt, holding the request line."""
        alias = call.trial.model.alias
        headers = self._headers.get(alias)
        if headers is None:
            headers = self._headers[alias] = json.dumps(
                redact_headers(call.http.headers, call.http.secret_headers))
        attempt = {
            "run_id": self.recorder.run_id, "idx": call.trial.index, "started_at": utcnow(),
            "duration_ms": 0.0, "url": self.scrub(url) or "", "request_headers_json": headers,
            "request_body": self.scrub(line.decode("utf-8", "replace")) or "",
            "status_code": None, "response_body": None, "error": None,
            "retry_after_ms": None}
        trial = (self.recorder.trial_row_of(call) if first_round and not call.trial_exists
                 else None)
        return trial, attempt


_KIND, _FINISH, _RESPONSE_MODEL, _FINGERPRINT = (
    LIMITS["results"][c] for c in ("error_kind", "finish_reason", "response_model",
                                    "fingerprint"))
_ATTEMPT_KIND = LIMITS["attempts"]["error_kind"]
_NO_HTTP = HttpRequest("POST", "", {}, b"")


class IngestWriter(BatchWriter):
    """The writer thread, with how far behind it is: reading a result file waits while the
    thread is a few batches behind, so records never pile up in memory (nor in one of
    its transactions: 25 batches at most, not a run's 100)."""

    behind_batches = 25

    @property
    def backlog(self) -> int:
        return self._queue.qsize()


class Ingest:
    """Result lines -> records completing the trials' pending attempts.

    `take` makes the record of one line. A line that may be sent again (expired, or a
    transient error) gets its attempt recorded and is held back (`deferred`, a few of them)
    until the batch is read; `settle` then sends it again while its attempts are under
    ``run.max_attempts`` and records it as an error after that."""

    def __init__(self, run_id: str, calls: Calls, stats: RunStats, scrub: Scrubber,
                 max_attempts: int, cache_policy: str) -> None:
        self.run_id = run_id
        self.calls = calls
        self.stats = stats
        self.scrub = scrub
        self.max_attempts = max_attempts
        self.cacheable = cache_policy == "readwrite"
        self.retried: dict[int, int] = {}  # trials this process sent again: how often
        self.deferred: dict[int, BatchItem] = {}
        self._protos: dict[tuple[int, int, int], Call] = {}
        plan = calls.plan
        spec = calls.spec
        self._dims = (len(spec.prompts), len(plan.points), len(spec.dataset.rows),
                      plan.repeats)

    def take(self, idx: int, item: BatchItem, raw: str, url: str) -> Record:
        attempt = {"run_id": self.run_id, "idx": idx, "url": url,
                   "status_code": fit_int(item.status_code), "response_body": self.scrub(raw),
                   "error_kind": fit_text(item.error_kind, _ATTEMPT_KIND),
                   "error": self.scrub(item.error)}
        self.stats.attempts += 1
        if item.response is None and item.retryable:
            self.deferred[idx] = item
            return Record({}, {}, [attempt], True)
        return Record({}, self.result(idx, item), [attempt], True)

    def settle(self, numbers: dict[int, int]) -> tuple[set[int], list[Record]]:
        """The deferred trials to send again, and the records of those out of attempts;
        `numbers` holds each deferred trial's attempt count."""
        retry: set[int] = set()
        records = []
        for idx, item in sorted(self.deferred.items()):
            if numbers.get(idx, self.max_attempts) < self.max_attempts:
                retry.add(idx)
                self.retried[idx] = self.retried.get(idx, 0) + 1
            else:
                records.append(Record({}, self.result(idx, item), [], True))
        self.deferred.clear()
        return retry, records

    def _proto(self, idx: int) -> Call:
        """A call standing for every trial of one model, prompt and grid point (what pricing
        and structured output depend on); nothing rendered."""
        np_, ng, nr, nrep = self._dims
        rest = idx // (nr * nrep)
        gi, rest = rest % ng, rest // ng
        pi, mi = rest % np_, rest // np_
        proto = self._protos.get((mi, pi, gi))
        if proto is None:
            trial = self.calls.plan.trial(idx)
            priced = replace(trial, model=self.calls.priced(trial.model.alias))
            proto = self._protos[(mi, pi, gi)] = Call(priced, _NO_HTTP, [], "", 0)
        return proto

    def result(self, idx: int, item: BatchItem) -> dict[str, Any]:
        """The result row of a line, as `Recorder.record` makes it for a call."""
        proto = self._proto(idx)
        r = item.response
        row: dict[str, Any] = {
            "run_id": self.run_id, "idx": idx, "latency_ms": None, "ttft_ms": None,
            "tokens_per_s": None, "attempts": 1 + self.retried.get(idx, 0),
            "cache_hit": False, "cache_source": None, "finished_at": utcnow()}
        self.stats.done += 1
        if r is None:
            self.stats.errors += 1
            row.update(dict.fromkeys(DETAIL_COLUMNS), status="error", output=None,
                       finish_reason=None, input_tokens=None, output_tokens=None,
                       cost_usd=None, response_model=None, fingerprint=None, cacheable=False,
                       error_kind=fit_text("batch_" + str(item.error_kind or "error")[:14],
                                           _KIND),
                       error=self.scrub(item.error))
            return row
        return self._answered(row, proto, r)

    def _answered(self, row: dict[str, Any], proto: Call,
                  r: ProviderResponse) -> dict[str, Any]:
        text: str | None = r.text
        error = None
        if text is not None and type(text) is not str:
            error = (f"results.output: the answer's text came as {type(text).__name__}, not "
                     "str: kept as JSON text; resume sends it again")
            text = fit_text(text)
        text = self.scrub(text)
        tokens_in, tokens_out = fit_int(r.input_tokens), fit_int(r.output_tokens)
        details = result_details(proto, r, text)
        cost = None
        if tokens_in is not None or tokens_out is not None:
            cost = fit_float(price(proto.trial.model, tokens_in, tokens_out, details))
            self.stats.cost_usd += cost or 0.0
        ok = error is None
        if ok:
            self.stats.ok += 1
        else:
            self.stats.errors += 1
        row.update(details, status="ok" if ok else "error", output=text,
                   finish_reason=fit_text(r.finish_reason, _FINISH), input_tokens=tokens_in,
                   output_tokens=tokens_out, cost_usd=cost,
                   response_model=fit_text(r.model, _RESPONSE_MODEL),
                   fingerprint=fit_text(r.fingerprint, _FINGERPRINT),
                   error_kind=None if ok else "unstorable", error=error,
                   cacheable=ok and self.cacheable)
        return row
