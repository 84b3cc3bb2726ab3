"""The runner: the one place that sends, times, retries and records.

A bounded pool of workers pulls trials from the lazy plan, renders each, sends it through
one shared client and hands a `Record` to one writer, which commits in batches off the
event loop. The clock, `sleep`, the random source and the HTTP client are injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import httpx

from promptlab.errors import ProviderError
from promptlab.experiment import Prepared
from promptlab.grid import Plan
from promptlab.providers import ProviderRequest, get_provider
from promptlab.providers.base import HttpRequest, Provider, ProviderResponse
from promptlab.runner.client import make_client
from promptlab.runner.retry import RetryPolicy, retry_after_s
from promptlab.spec import ModelSpec, Trial
from promptlab.store import Record, Store, utcnow

__all__ = ["Runner", "RunStats", "redact_headers"]

REDACTED = "[REDACTED]"
_ALWAYS_SECRET = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})


def redact_headers(headers: dict[str, str], secret: frozenset[str]) -> dict[str, str]:
    """Headers with every credential replaced, safe to store or log."""
    return {k: (REDACTED if k.lower() in secret or k.lower() in _ALWAYS_SECRET else v)
            for k, v in headers.items()}


@dataclass
class RunStats:
    planned: int
    done: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    attempts: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    stopped_models: dict[str, str] = field(default_factory=dict)


@dataclass
class _Outcome:
    response: ProviderResponse | None
    attempts: list[dict[str, object]]
    latency_ms: float | None
    error_kind: str | None
    error: str | None


class Runner:
    def __init__(
        self,
        prepared: Prepared,
        store: Store,
        run_id: str,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.perf_counter,
        rng: random.Random | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
    ) -> None:
        self.prepared = prepared
        self.spec = prepared.spec
        self.store = store
        self.run_id = run_id
        self.client = client
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_progress = on_progress
        run = self.spec.run
        self.policy = RetryPolicy(run.max_attempts, run.backoff_base_s, run.backoff_max_s)
        self.plan = Plan(self.spec)
        self.stats = RunStats(planned=len(self.plan))
        self._pending: list[Record] = []
        self._flush_now = asyncio.Event()
        self._providers: dict[str, Provider] = {
            m.alias: get_provider(m.provider) for m in self.spec.models}
        self._keys = {m.alias: (os.environ.get(m.api_key_env) if m.api_key_env else None)
                      for m in self.spec.models}
        self._limits = {m.alias: asyncio.Semaphore(m.max_concurrency)
                        for m in self.spec.models if m.max_concurrency}
        self._headers_json: dict[str, str] = {}
        self._stopped: dict[str, str] = {}

    def _trials(self, skip: frozenset[int]) -> Iterator[Trial]:
        for trial in self.plan:
            if trial.index not in skip:
                yield trial

    async def run(self, skip: frozenset[int] = frozenset()) -> RunStats:
        """Run every trial not in `skip`; commits as it goes, even when cancelled."""
        self.stats.planned = len(self.plan) - len(skip)
        own_client = self.client is None
        client = self.client or make_client(self.spec.run.concurrency)
        trials = self._trials(skip)
        start = self.clock()
        writer = asyncio.create_task(self._writer())
        ticker = asyncio.create_task(self._ticker()) if self.on_progress else None
        workers = [asyncio.create_task(self._worker(client, trials))
                   for _ in range(min(self.spec.run.concurrency, max(self.stats.planned, 1)))]
        try:
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            self.stats.interrupted = True
            raise
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if ticker is not None:
                ticker.cancel()
            # Whatever finished is committed, even on Ctrl-C.
            batch, self._pending = self._pending, []
            self.store.write(batch)
            if own_client:
                await asyncio.shield(client.aclose())
            self.stats.elapsed_s = self.clock() - start
            self.stats.stopped_models = dict(self._stopped)
            if self.on_progress:
                self.on_progress(self.stats)
        return self.stats

    async def _ticker(self) -> None:
        assert self.on_progress is not None
        while True:
            self.on_progress(self.stats)
            await asyncio.sleep(0.1)

    async def _writer(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), 0.25)
            self._flush_now.clear()
            if self._pending:
                batch, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self.store.write, batch)
                except asyncio.CancelledError:
                    # The thread finishes its transaction; do not write the batch twice.
                    raise

    async def _worker(self, client: httpx.AsyncClient, trials: Iterator[Trial]) -> None:
        batch_size = self.spec.run.batch_size
        for trial in trials:
            record = await self._trial(client, trial)
            self._pending.append(record)
            if len(self._pending) >= batch_size:
                self._flush_now.set()

    def _build(self, trial: Trial) -> tuple[HttpRequest, list[dict[str, str]]]:
        messages = self.prepared.renderer.render(trial.prompt, trial.row, self.spec.dataset.name)
        provider = self._providers[trial.model.alias]
        request = ProviderRequest(trial.model.model, messages, trial.params)
        return provider.build_request(trial.model, request, self._keys[trial.model.alias]), messages

    async def _trial(self, client: httpx.AsyncClient, trial: Trial) -> Record:
        model = trial.model
        http, messages = self._build(trial)
        if model.alias in self._stopped:
            outcome = _Outcome(None, [], None, "skipped", self._stopped[model.alias])
        else:
            outcome = await self._send(client, model, trial, http)
        return self._record(trial, messages, outcome)

    async def _send(self, client: httpx.AsyncClient, model: ModelSpec, trial: Trial,
                    http: HttpRequest) -> _Outcome:
        provider = self._providers[model.alias]
        timeout = model.timeout_s or self.spec.run.timeout_s
        headers_json = self._headers_json.get(model.alias)
        if headers_json is None:
            headers_json = json.dumps(redact_headers(http.headers, http.secret_headers))
            self._headers_json[model.alias] = headers_json
        body_text = http.body.decode("utf-8")
        limit = self._limits.get(model.alias)
        attempts: list[dict[str, object]] = []
        number = 0
        while True:
            number += 1
            started_at = utcnow()
            t0 = self.clock()
            status: int | None = None
            raw: bytes | None = None
            kind: str | None = None
            error: str | None = None
            wait: float | None = None
            parsed: ProviderResponse | None = None
            try:
                if limit is not None:
                    async with limit:
                        resp = await client.request(http.method, http.url, headers=http.headers,
                                                    content=http.body, timeout=timeout)
                else:
                    resp = await client.request(http.method, http.url, headers=http.headers,
                                                content=http.body, timeout=timeout)
                status, raw = resp.status_code, resp.content
                if status >= 400:
                    kind = provider.classify(status, raw)
                    error = f"HTTP {status}: {raw[:500].decode('utf-8', 'replace')}"
                    wait = retry_after_s(resp.headers)
                else:
                    parsed = provider.parse_response(status, raw)
            except httpx.TimeoutException:
                kind, error = "transient", f"timeout after {timeout:g}s"
            except httpx.TransportError as exc:
                kind, error = "transient", f"{type(exc).__name__}: {exc}"
            except ProviderError as exc:
                kind, error = exc.kind, str(exc)
            duration_ms = (self.clock() - t0) * 1000
            self.stats.attempts += 1
            attempts.append({
                "run_id": self.run_id, "idx": trial.index, "number": number,
                "started_at": started_at, "duration_ms": duration_ms, "url": http.url,
                "request_headers_json": headers_json, "request_body": body_text,
                "status_code": status,
                "response_body": raw.decode("utf-8", "replace") if raw is not None else None,
                "error_kind": kind, "error": error,
                "retry_after_ms": wait * 1000 if wait is not None else None,
            })
            if kind is None:
                return _Outcome(parsed, attempts, duration_ms, None, None)
            if kind == "auth":
                self._stopped.setdefault(
                    model.alias, f"stopped after an auth failure on model '{model.alias}': "
                    f"{error}; check its API key")
            if not self.policy.should_retry(kind, number):
                return _Outcome(None, attempts, duration_ms, kind, error)
            await self.sleep(self.policy.delay(number, wait, self.rng))

    def _record(self, trial: Trial, messages: list[dict[str, str]], outcome: _Outcome) -> Record:
        model = trial.model
        trial_row = {
            "run_id": self.run_id, "idx": trial.index, "key": trial.key,
            "model_alias": model.alias, "provider": model.provider, "model": model.model,
            "prompt": trial.prompt.name, "params_json": json.dumps(trial.params, sort_keys=True),
            "row_id": trial.row.id, "row_json": json.dumps(trial.row.data, sort_keys=True),
            "repeat": trial.repeat, "messages_json": json.dumps(messages),
        }
        r = outcome.response
        cost = None
        if r is not None and (r.input_tokens is not None or r.output_tokens is not None):
            cost = ((r.input_tokens or 0) * model.input_per_mtok
                    + (r.output_tokens or 0) * model.output_per_mtok) / 1e6
        status = "ok" if r is not None else (
            "skipped" if outcome.error_kind == "skipped" else "error")
        self.stats.done += 1
        if status == "ok":
            self.stats.ok += 1
        elif status == "skipped":
            self.stats.skipped += 1
        else:
            self.stats.errors += 1
        result = {
            "run_id": self.run_id, "idx": trial.index, "status": status,
            "output": r.text if r else None, "finish_reason": r.finish_reason if r else None,
            "input_tokens": r.input_tokens if r else None,
            "output_tokens": r.output_tokens if r else None,
            "latency_ms": outcome.latency_ms, "cost_usd": cost,
            "attempts": len(outcome.attempts), "response_model": r.model if r else None,
            "fingerprint": r.fingerprint if r else None, "error_kind": outcome.error_kind,
            "error": outcome.error, "cache_hit": False, "cache_source": None,
            "finished_at": utcnow(),
        }
        return Record(trial=trial_row, result=result, attempts=outcome.attempts)
