"""What the runner records: the values it passes around, and the rows they become.

`Recorder` turns a finished trial (sent, failed, skipped, or answered from the cache) into
a `Record` of database rows and keeps the run's counters. `trial_row` is shared with
`reproduce`, so a replayed trial is stored exactly as a run stores it.

What a server or a dataset sends is fitted to its column on the way in (the store's rules:
text, 32-bit integers, finite floats, bounded strings), so that one odd answer cannot fail
the batch it is written with. An answer whose text is not text (say, a list of content
parts) is kept as JSON but recorded as an error, kind "unstorable", so resume asks again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from promptlab.canonical import canonical_json
from promptlab.images import pack
from promptlab.providers.base import HttpRequest, ProviderResponse, dumps
from promptlab.providers.tools import request_options, tool_calls_value, wants_json
from promptlab.redaction import redact_url
from promptlab.spec import ModelSpec, RunSettings, Trial
from promptlab.store import Record, utcnow
from promptlab.store.tables import RESULT_DETAILS
from promptlab.store.writer import LIMITS, fit_float, fit_int, fit_text

__all__ = ["RunStats", "Call", "Outcome", "Recorder", "Rendered", "trial_row", "same_request",
           "with_n"]

Scrub = Callable[[str | None], str | None]

_ALIAS, _PROVIDER, _MODEL, _PROMPT, _ROW_ID, _ENDPOINT = (
    LIMITS["trials"][c] for c in ("model_alias", "provider", "model", "prompt", "row_id",
                                   "endpoint"))
_FINISH, _RESPONSE_MODEL, _FINGERPRINT, _KIND = (
    LIMITS["results"][c] for c in ("finish_reason", "response_model", "fingerprint",
                                    "error_kind"))
_ATTEMPT_KIND = LIMITS["attempts"]["error_kind"]


@dataclass
class RunStats:
    planned: int
    done: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    cached: int = 0
    attempts: int = 0
    calls: int = 0  # requests this session sent (a call's retries not counted again)
    prior_calls: int = 0  # sent before this resume: run.max_calls is the run's
    cost_usd: float = 0.0  # the run's, what an earlier part of it spent included
    prior_cost_usd: float = 0.0  # of that, spent before this resume
    elapsed_s: float = 0.0
    interrupted: bool = False
    budget_stop: str | None = None
    stopped_models: dict[str, str] = field(default_factory=dict)

    def calls_spent(self, run: RunSettings) -> bool:
        """Whether the run sent its run.max_calls (`budget_stop` then says so)."""
        if run.max_calls is not None and self.prior_calls + self.calls >= run.max_calls:
            self.budget_stop = f"run.max_calls={run.max_calls} reached"
            return True
        return False

    def take_call(self, run: RunSettings) -> bool:
        """Count one more request if the run's budgets allow it; else name the budget that
        stops the run (`budget_stop`)."""
        if self.calls_spent(run):
            return False
        if run.max_cost_usd is not None and self.cost_usd >= run.max_cost_usd:
            self.budget_stop = (f"run.max_cost_usd={run.max_cost_usd:g} reached "
                                f"(${self.cost_usd:.4f} spent)")
            return False
        self.calls += 1
        return True


@dataclass
class Call:
    """A trial ready to send: its request, rendered messages and fingerprint."""

    trial: Trial
    http: HttpRequest
    messages: list[dict[str, str]]
    cache_key: str
    est_tokens: int
    prior_attempts: int = 0
    trial_exists: bool = False
    messages_json: str = ""
    siblings: list[Call] = field(default_factory=list)  # repeats riding along as n samples


@dataclass
class Outcome:
    response: ProviderResponse | None
    attempts: list[dict[str, Any]]
    latency_ms: float | None
    error_kind: str | None
    error: str | None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    choices: list[ProviderResponse] | None = None
    sample_of: str | None = None


class Rendered(Protocol):
    """What a trial's row is made of: a `Call`, or a trial rendered but not yet built into
    a request (`runner.calls.Pending`: a cache hit never is)."""

    @property
    def trial(self) -> Trial: ...
    @property
    def messages_json(self) -> str: ...
    @property
    def cache_key(self) -> str: ...


def trial_row(run_id: str, trial: Trial, *, params_json: str, row_json: str,
              messages_json: str, cache_key: str) -> dict[str, Any]:
    model = trial.model
    # Names longer than their column keep a hash of the whole: they stay distinct.
    return {
        "run_id": run_id, "idx": trial.index, "key": trial.key,
        "model_alias": fit_text(model.alias, _ALIAS, identity=True),
        "provider": fit_text(model.provider, _PROVIDER, identity=True),
        "model": fit_text(model.model, _MODEL, identity=True),
        "prompt": fit_text(trial.prompt.name, _PROMPT, identity=True),
        "params_json": params_json, "row_id": fit_text(trial.row.id, _ROW_ID, identity=True),
        "row_json": row_json, "repeat": trial.repeat, "messages_json": messages_json,
        "endpoint": fit_text(model.endpoint_identity(), _ENDPOINT, identity=True),
        "cache_key": cache_key,
    }


class Recorder:
    def __init__(self, run_id: str, stats: RunStats, scrub: Scrub, cache_policy: str,
                 images: dict[str, str] | None = None) -> None:
        self.run_id = run_id
        self._images = images or {}  # image payload -> artifact sha256, stored once
        self.stats = stats
        self._scrub = scrub
        self._cache_policy = cache_policy
        self._params_cache: dict[int, tuple[str, str]] = {}
        self._row_json: dict[int, str] = {}
        self._params_stored: dict[int, str] = {}  # id(params) -> scrubbed stored JSON
        self._endpoints: dict[str, str | None] = {}  # model alias -> scrubbed endpoint

    def params_json(self, params: dict[str, Any]) -> tuple[str, str]:
        """(stored JSON, canonical JSON) of a plan's shared params dict."""
        cached = self._params_cache.get(id(params))
        if cached is None:
            cached = (json.dumps(params, sort_keys=True), canonical_json(params))
            self._params_cache[id(params)] = cached
        return cached

    def _trial_row(self, call: Rendered) -> dict[str, Any]:
        trial = call.trial
        row_json = self._row_json.get(trial.row.index)
        if row_json is None:
            row_json = self._scrub(json.dumps(trial.row.data, sort_keys=True)) or ""
            if len(self._row_json) < 20_000:
                self._row_json[trial.row.index] = row_json
        params_json = self._params_stored.get(id(trial.params))
        if params_json is None:  # one per grid point, like params_json
            params_json = self._scrub(self.params_json(trial.params)[0]) or ""
            self._params_stored[id(trial.params)] = params_json
        row = trial_row(self.run_id, trial, params_json=params_json, row_json=row_json,
                        messages_json=pack(self._scrub(call.messages_json) or "", self._images),
                        cache_key=call.cache_key)
        # The endpoint is the base URL, whose query may hold a key (?key=...).
        alias = trial.model.alias
        if alias not in self._endpoints:
            self._endpoints[alias] = self._scrub(redact_url(row["endpoint"],
                                                            trial.model.secret_params))
        row["endpoint"] = self._endpoints[alias]
        return row

    def trial_row_of(self, call: Call) -> dict[str, Any]:
        """The trial's row as `record` stores it (the batch path stores it when sending)."""
        return self._trial_row(call)

    def record(self, call: Call, outcome: Outcome) -> Record:
        trial, model = call.trial, call.trial.model
        row = self._trial_row(call)
        self.stats.done += 1
        r = outcome.response
        text = finish = response_model = fingerprint = None
        tokens_in = tokens_out = None
        unstorable = None
        if r is not None:
            text, tokens_in, tokens_out = r.text, fit_int(r.input_tokens), fit_int(r.output_tokens)
            finish = fit_text(r.finish_reason, _FINISH)
            response_model = fit_text(r.model, _RESPONSE_MODEL)
            fingerprint = fit_text(r.fingerprint, _FINGERPRINT)
            if text is not None and type(text) is not str:
                unstorable = _not_text(text)
                text = fit_text(text)
            # A server may echo what it was sent, the key in its headers included.
            text = self._scrub(text)
        cost = None
        details = result_details(call, r, text) if r is not None else dict.fromkeys(
            DETAIL_COLUMNS)
        if r is not None and (tokens_in is not None or tokens_out is not None):
            cost = fit_float(price(model, tokens_in, tokens_out, details))
            self.stats.cost_usd += cost or 0.0  # paid for, stored or not
        status = "ok" if r is not None and unstorable is None else (
            "skipped" if outcome.error_kind == "skipped" else "error")
        if status == "ok":
            self.stats.ok += 1
        elif status == "skipped":
            self.stats.skipped += 1
        else:
            self.stats.errors += 1
        for attempt in outcome.attempts:
            attempt["status_code"] = fit_int(attempt["status_code"])
            attempt["error_kind"] = fit_text(attempt["error_kind"], _ATTEMPT_KIND)
            attempt["retry_after_ms"] = fit_float(attempt["retry_after_ms"])
            if self._images:
                attempt["request_body"] = pack(attempt["request_body"], self._images)
        result = {
            "run_id": self.run_id, "idx": trial.index, "status": status,
            "output": text, "finish_reason": finish,
            "input_tokens": tokens_in, "output_tokens": tokens_out,
            "latency_ms": fit_float(outcome.latency_ms), "ttft_ms": fit_float(outcome.ttft_ms),
            "tokens_per_s": fit_float(outcome.tokens_per_s), "cost_usd": cost,
            "attempts": len(outcome.attempts), "response_model": response_model,
            "fingerprint": fingerprint,
            "error_kind": "unstorable" if unstorable else fit_text(outcome.error_kind, _KIND),
            "error": unstorable or outcome.error, "cache_hit": False,
            "cacheable": status == "ok" and self._cache_policy == "readwrite",
            "cache_source": f"n-sample of {outcome.sample_of}" if outcome.sample_of else None,
            "finished_at": utcnow(), **details,
        }
        return Record(row, result, outcome.attempts, call.trial_exists)

    def record_hit(self, call: Rendered, trial_exists: bool, source: tuple[str, int]) -> Record:
        """A trial answered from the cache: the stored result `source` (run id, idx) again,
        at no cost; the database copies it (`Store.write`)."""
        self.stats.done += 1
        self.stats.cached += 1
        self.stats.ok += 1
        run_id, idx = source
        result = {"run_id": self.run_id, "idx": call.trial.index, "status": "ok",
                  "cache_source": f"{run_id}:{idx}", "finished_at": utcnow()}
        return Record(self._trial_row(call), result, [], trial_exists, copy_of=source)


DETAIL_COLUMNS = RESULT_DETAILS  # result columns beyond text and counts (0005)


def result_details(call: Call, r: ProviderResponse, text: str | None) -> dict[str, Any]:
    """Tool calls (JSON, in order), the parsed JSON of a structured-output request,
    reasoning text and token detail, fitted to their columns."""
    parsed = None
    trial = call.trial
    if isinstance(text, str) and wants_json(request_options(trial.model, trial.prompt),
                                            trial.params):
        try:
            parsed = _json_text(json.loads(text))
        except (ValueError, RecursionError):
            parsed = None
    return {
        "tool_calls_json": _json_text(tool_calls_value(r.tool_calls)) if r.tool_calls else None,
        "parsed_json": fit_text(parsed) if parsed is not None else None,
        "reasoning": fit_text(r.reasoning) if r.reasoning else None,
        "reasoning_tokens": fit_int(r.reasoning_tokens),
        "cached_input_tokens": fit_int(r.cached_input_tokens),
        "cache_write_tokens": fit_int(r.cache_write_tokens),
    }


def price(model: ModelSpec, tokens_in: int | None, tokens_out: int | None,
          details: dict[str, Any]) -> float:
    """USD for a call: input read from the prompt cache and written to it at their own
    rates (input_per_mtok where unset); input tokens include both."""
    cached = details.get("cached_input_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    fresh = max((tokens_in or 0) - cached - written, 0)
    cached_rate = (model.input_per_mtok if model.cached_input_per_mtok is None
                   else model.cached_input_per_mtok)
    write_rate = (model.input_per_mtok if model.cache_write_per_mtok is None
                  else model.cache_write_per_mtok)
    return (fresh * model.input_per_mtok + cached * cached_rate + written * write_rate
            + (tokens_out or 0) * model.output_per_mtok) / 1e6


def _not_text(value: object) -> str:
    shown = fit_text(value, 80) or ""
    return (f"results.output: the answer's text came as {type(value).__name__}, not str: "
            f"kept as JSON text ({shown}); the provider did not make text of it, so the call "
            "counts as an error and resume sends it again")


def same_request(leader: Call, call: Call) -> bool:
    """The same request but for the repeat index: it can ride along as one more sample."""
    a, b = leader.trial, call.trial
    return (a.model is b.model and a.prompt is b.prompt and a.params is b.params
            and a.row.index == b.row.index and not call.trial_exists
            and not leader.trial_exists)


def with_n(leader: Call) -> Call:
    """The leader's request asking for one sample per call riding along."""
    if leader.siblings:
        body = json.loads(leader.http.body)
        body["n"] = 1 + len(leader.siblings)
        leader.http = replace(leader.http, body=dumps(body))
    return leader


def _json_text(value: Any) -> str:
    """JSON text for a column; lone surrogates (from \\ud800 escapes) kept as escapes."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text
