"""The batch executor: submit, poll, ingest; the I/O of a run's batch path.

Trials of the batched models that the cache does not answer, within the budgets
(`budget`), are stored as they are sent (their trial rows and a pending attempt holding the
request line) and grouped per model into batches no larger than the API allows (requests
and bytes; PROMPTLAB_BATCH_MAX lowers both). A batch's row is written (status
"submitting", with its uploaded file) before the create call, and its id as soon as the
reply comes; a resumed run that finds a row without an id looks the batch up on the server
(`_recover`) and creates it only if it is not there. Then every live batch is polled with
backoff until it ends and its results are streamed into records (`results`); items that
expired or errored (retryable) go in a new batch until ``run.max_attempts``, after which
they are recorded as errors with the provider's reason. A resumed run polls the live
batches it finds in the database first and sends only trials that no batch holds.

The HTTP goes through the runner's `Sender` seam; the providers and `wire` only translate.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from promptlab.batch.budget import Budget
from promptlab.batch.ingest import Calls, Ingest
from promptlab.batch.results import LOST, BatchFailed, BatchLost, ingest_batch
from promptlab.batch.wire import AnthropicBatches, BatchState, OpenAIBatches, wire_for
from promptlab.errors import ProviderError
from promptlab.providers.base import HttpRequest, dumps
from promptlab.redaction import Scrubber
from promptlab.runner.client import Reply, Sender, SendError, as_sender
from promptlab.runner.engine import Runner
from promptlab.runner.records import Call, Recorder, RunStats
from promptlab.spec import ExperimentSpec
from promptlab.store import Prior, Store
from promptlab.store.batches import BatchInfo
from promptlab.store.writer import BatchWriter
from promptlab.templates import Renderer

if TYPE_CHECKING:
    import httpx

__all__ = ["BatchExecutor", "BatchFailed", "cancel_batches", "run_batched"]

Wire = OpenAIBatches | AnthropicBatches
CHUNK = 1024  # trials looked up in the cache with one query
MAX_LIST_PAGES = 20  # pages of the batch listing searched for a batch lost in a crash
MAX_POLL_FAILURES = 5  # polls in a row that fail (each retried) before a batch is lost


def size_limits() -> tuple[int, int]:
    """Requests and bytes per batch at most (the API's own limits apply as well);
    PROMPTLAB_BATCH_MAX=requests[,bytes] lowers them (tests split small runs with it)."""
    raw = os.environ.get("PROMPTLAB_BATCH_MAX", "")
    parts = [int(p) for p in raw.split(",") if p.strip()]
    return (parts[0] if parts else 10**9, parts[1] if len(parts) > 1 else 10**12)


def poll_interval() -> tuple[float, float]:
    """First and longest wait between polls; PROMPTLAB_BATCH_POLL_S=first[,max]."""
    raw = os.environ.get("PROMPTLAB_BATCH_POLL_S", "")
    parts = [float(p) for p in raw.split(",") if p.strip()]
    first = parts[0] if parts else 2.0
    return first, parts[1] if len(parts) > 1 else max(first, 60.0)


class BatchExecutor:
    def __init__(self, spec: ExperimentSpec, renderer: Renderer, store: Store, run_id: str,
                 models: frozenset[str], *, client: httpx.AsyncClient | Sender | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 stats: RunStats | None = None,
                 on_progress: Callable[[RunStats], None] | None = None,
                 limits: tuple[int, int] | None = None) -> None:
        self.spec, self.store, self.run_id, self.models = spec, store, run_id, models
        self.client, self.sleep, self.on_progress = client, sleep, on_progress
        self.stats = stats or RunStats(planned=0)
        self.limits = limits or size_limits()  # (requests, bytes) per batch at most
        self.scrub = Scrubber(spec.models)
        self.recorder = Recorder(run_id, self.stats, self.scrub, spec.run.cache)
        keys = {m.alias: (os.environ.get(m.api_key_env) if m.api_key_env else None)
                for m in spec.models}
        self.calls = Calls(spec, renderer, self.recorder, keys, self.scrub)
        self._wires: dict[str, Wire] = {}
        self._reserved: dict[int, float] = {}  # estimated cost of batches not read yet
        self.poll_first_s, self.poll_max_s = poll_interval()

    # -- the run ------------------------------------------------------------------------

    async def run(self, done: Iterable[int], started: dict[int, int]) -> RunStats:
        """Send (or, after a crash, go on polling) every batched trial not in `done`."""
        done = set(done)
        t0 = time.perf_counter()
        client, own = as_sender(self.client, 8)
        self._client = client
        self._writer = BatchWriter(self.store.write, self.spec.run.batch_size)
        self._ingest = Ingest(self.run_id, self.calls, self.stats, self.scrub,
                              self.spec.run.max_attempts, self.spec.run.cache)
        self._started = started
        try:
            mine = [b for b in self.store.batches(self.run_id) if b.ingested_at is None]
            live = [await self._recover(b) if b.batch_id is None else b for b in mine]
            held = {i for b in live for i in b.indexes}
            pending = (t for t in self.calls.plan if t.model.alias in self.models
                       and t.index not in done and t.index not in held)
            live += await self._submit_new(pending, round_=1)
            await self._poll(live, done)
        finally:
            await asyncio.shield(asyncio.to_thread(self._writer.close))
            self.stats.elapsed_s += time.perf_counter() - t0
            if own:
                await asyncio.shield(client.aclose())
            if self.on_progress:
                self.on_progress(self.stats)
        return self.stats

    async def _submit_new(self, trials: Iterable[Any], round_: int) -> list[BatchInfo]:
        """Cache hits recorded at once; the rest, within the budgets, stored as pending
        attempts, grouped per model and submitted."""
        out: list[BatchInfo] = []
        groups: dict[str, tuple[list[int], list[bytes], int]] = {}
        chunk: list[Call] = []
        budget = Budget(self.spec.run, self.stats, self._reserved) if round_ == 1 else None

        async def flush_chunk() -> bool:
            hits: dict[str, tuple[str, int]] = {}
            if self.spec.run.cache != "off" and round_ == 1 and chunk:
                hits = await asyncio.to_thread(self.store.cache_sources,
                                               [c.cache_key for c in chunk])
            sending: list[tuple[Call, bytes]] = []
            trial_rows, attempts = [], []
            going = True
            for call in chunk:
                hit = hits.get(call.cache_key)
                if hit is not None:
                    self._writer.put(self.recorder.record_hit(call, call.trial_exists, hit))
                    continue
                if budget is not None and not budget.take(call):
                    going = False
                    break
                line = dumps(self.calls.line(call))
                trial, attempt = self.calls.pending(call, line, self._wire(call).base,
                                                    round_ == 1)
                if trial is not None:
                    trial_rows.append(trial)
                attempts.append(attempt)
                sending.append((call, line))
            chunk.clear()
            # Stored before any batch holding them is created (see store/ingest.py).
            await asyncio.to_thread(self.store.add_pending, self.run_id, trial_rows, attempts)
            for call, line in sending:
                alias = call.trial.model.alias
                wire = self._wire(call)
                max_n, max_bytes = (min(a, b) for a, b in zip(
                    self.limits, (wire.max_requests, wire.max_bytes), strict=True))
                idxs, lines, size = groups.get(alias, ([], [], 0))
                if idxs and (len(idxs) >= max_n or size + len(line) + 1 > max_bytes):
                    out.append(await self._submit(wire, idxs, lines, round_, budget))
                    idxs, lines, size = [], [], 0
                idxs.append(call.trial.index)
                lines.append(line)
                groups[alias] = (idxs, lines, size + len(line) + 1)
            return going

        for trial in trials:
            chunk.append(self.calls.call(trial, self._started))
            if len(chunk) >= CHUNK and not await flush_chunk():
                break
        else:
            await flush_chunk()
        for alias, (idxs, lines, _) in groups.items():
            if idxs:
                out.append(await self._submit(self._wires[alias], idxs, lines, round_, budget))
        self._writer.flush()
        return out

    def _wire(self, call: Call) -> Wire:
        alias = call.trial.model.alias
        wire = self._wires.get(alias)
        if wire is None:
            provider = self.calls.batch_lines[alias]
            wire = self._wires[alias] = wire_for(provider.batch_api, call.trial.model,
                                                 call.http,
                                                 self.calls.providers[alias].default_base_url)
        return wire

    async def _submit(self, wire: Wire, idxs: list[int], lines: list[bytes], round_: int,
                      budget: Budget | None = None) -> BatchInfo:
        file_id = None
        if isinstance(wire, OpenAIBatches):
            reply = await self._send(wire.upload(b"\n".join(lines) + b"\n"), "upload")
            file_id = wire.file_id(reply.body)
        # The row first: a crash between the server accepting the batch and the row hearing
        # of it is recovered by finding the batch on the server (`_recover`), not resending.
        number = self.store.add_batch(
            self.run_id, model_alias=wire.model.alias, api=wire.api, round=round_,
            indexes=idxs, status="submitting", batch_id=None, input_file_id=file_id)
        if budget is not None:
            self._reserved[number] = budget.settle()
        return await self._create(wire, number, lines, file_id)

    async def _create(self, wire: Wire, number: int, lines: list[bytes],
                      file_id: str | None) -> BatchInfo:
        reply = await self._send(wire.create(lines, file_id, self.run_id, number),
                                 "create a batch")
        state = wire.state(reply.body)
        self.store.update_batch(self.run_id, number, status=state.status,
                                batch_id=state.batch_id)
        return self._info(number)

    async def _recover(self, batch: BatchInfo) -> BatchInfo:
        """A batch whose row was written but whose creation was not heard of: adopt it if
        the server has it, create it otherwise."""
        wire = self._wire_of(batch)
        known = frozenset(b.batch_id for b in self.store.batches() if b.batch_id)
        after = None
        for _ in range(MAX_LIST_PAGES):
            body = (await self._send(wire.listing(after), "list batches")).body
            state, after = wire.find(body, self.run_id, batch.number, batch.request_count,
                                     known, batch.created_at)
            if state is not None:
                self.store.update_batch(self.run_id, batch.number, status=state.status,
                                        batch_id=state.batch_id)
                return self._info(batch.number)
            if after is None:
                break
        file_id = batch.input_file_id
        lines = [] if file_id is not None else [
            dumps(self.calls.line(self.calls.call(self.calls.plan.trial(i), {})))
            for i in batch.indexes]  # the same lines: the plan and the renderer are pure
        if isinstance(wire, OpenAIBatches) and file_id is None:
            reply = await self._send(wire.upload(b"\n".join(lines) + b"\n"), "upload")
            file_id = wire.file_id(reply.body)
            self.store.update_batch(self.run_id, batch.number, input_file_id=file_id)
        return await self._create(wire, batch.number, lines, file_id)

    def _info(self, number: int) -> BatchInfo:
        return next(b for b in self.store.batches(self.run_id) if b.number == number)

    # -- polling and ingestion ------------------------------------------------------------

    async def _poll(self, live: list[BatchInfo], done: set[int]) -> None:
        wait = self.poll_first_s
        failures: dict[int, int] = {}
        while live:
            still: list[BatchInfo] = []
            for batch in live:
                wire = self._wire_of(batch)
                state = await self._state_of(batch, wire, failures)
                if state is None:  # the poll failed: polled again later
                    still.append(batch)
                    continue
                if (state.status, state.completed, state.failed) != (
                        batch.status, batch.completed_count, batch.failed_count):
                    self.store.update_batch(
                        self.run_id, batch.number, status=state.status,
                        completed_count=state.completed, failed_count=state.failed,
                        output_file_id=state.output_file_id, error_file_id=state.error_file_id,
                        results_url=state.results_url, error=state.error)
                    batch = self._info(batch.number)
                if not state.ended:
                    still.append(batch)
                    continue
                retry = await ingest_batch(self, batch, wire, state, done)
                self._reserved.pop(batch.number, None)
                if retry:
                    trials = [self.calls.plan.trial(i) for i in sorted(retry)]
                    still += await self._submit_new(trials, batch.round + 1)
                self.store.mark_ingested(self.run_id, batch.number)
            live = still
            if self.on_progress:
                self.on_progress(self.stats)
            if live:
                await self.sleep(wait)
                wait = min(wait * 1.5, self.poll_max_s)

    async def _state_of(self, batch: BatchInfo, wire: Wire,
                        failures: dict[int, int]) -> BatchState | None:
        """The batch's state as polled; a lost state when the server does not know it (or
        its polls failed `MAX_POLL_FAILURES` times in a row); None after a failed poll."""
        assert batch.batch_id is not None
        if batch.status == LOST:
            return BatchState(batch.batch_id, LOST, True, error=batch.error)
        try:
            reply = await self._send(wire.poll(batch.batch_id), "poll", lost=True)
            state = wire.state(reply.body)
            failures.pop(batch.number, None)
            return state
        except BatchLost as exc:
            reason = f"batch {batch.batch_id} lost: {exc}"
        except (BatchFailed, ProviderError, KeyError, TypeError, ValueError) as exc:
            n = failures[batch.number] = failures.get(batch.number, 0) + 1
            reason = f"batch {batch.batch_id} lost after {n} failed polls: {exc}"
            if n < MAX_POLL_FAILURES:
                self.store.update_batch(self.run_id, batch.number, error=self.scrub(str(exc)))
                return None
        reason = self.scrub(reason) or reason
        self.store.update_batch(self.run_id, batch.number, status=LOST, error=reason)
        return BatchState(batch.batch_id, LOST, True, error=reason)

    def _wire_of(self, batch: BatchInfo) -> Wire:
        wire = self._wires.get(batch.model_alias)
        if wire is None:
            first = next(i for i in batch.indexes)
            self._wire(self.calls.call(self.calls.plan.trial(first), {}))
            wire = self._wires[batch.model_alias]
        return wire

    async def _send(self, request: HttpRequest, what: str, lost: bool = False) -> Reply:
        """A control call, transient faults retried with backoff; with `lost`, a 404 or
        410 (the server does not know the batch) raises `BatchLost`."""
        wait = 0.5
        for attempt in range(1, 6):
            try:
                reply = await self._client.send(request, self.spec.run.timeout_s * 4)
            except SendError as exc:
                if attempt == 5:
                    raise BatchFailed(f"batch API ({what}): {exc}") from None
            else:
                if reply.status < 400:
                    return reply
                if lost and reply.status in (404, 410):
                    text = self.scrub(reply.body[:200].decode("utf-8", "replace"))
                    raise BatchLost(f"HTTP {reply.status} at {self.scrub(request.url)}: {text}")
                if reply.status not in (408, 429, 529) and reply.status < 500 or attempt == 5:
                    text = self.scrub(" ".join(reply.body[:300].decode("utf-8",
                                                                        "replace").split()))
                    raise BatchFailed(f"batch API ({what}) at {self.scrub(request.url)}: HTTP "
                                      f"{reply.status}: {text}")
            await self.sleep(wait)
            wait *= 2
        raise AssertionError("unreachable")


async def cancel_batches(store: Store, spec: ExperimentSpec, renderer: Renderer, run_id: str,
                         client: httpx.AsyncClient | Sender | None = None) -> list[str]:
    """Ask the provider to cancel every live batch of the run; returns their ids."""
    executor = BatchExecutor(spec, renderer, store, run_id, frozenset(), client=client)
    sender, own = as_sender(client, 4)
    executor._client = sender
    ids: list[str] = []
    try:
        for batch in store.batches(run_id):
            if not batch.live or batch.batch_id is None or batch.status == LOST:
                continue
            wire = executor._wire_of(batch)
            try:
                reply = await executor._send(wire.cancel(batch.batch_id), "cancel", lost=True)
            except BatchLost as exc:  # resume sends its trials again
                store.update_batch(run_id, batch.number, status=LOST,
                                   error=f"batch {batch.batch_id} lost: {exc}")
                continue
            state = wire.state(reply.body)
            store.update_batch(run_id, batch.number, status=state.status)
            ids.append(batch.batch_id)
    finally:
        if own:
            await sender.aclose()
    return ids


async def run_batched(runner: Runner, models: frozenset[str], prior: Prior) -> RunStats:
    """The run's trials: those of models not batched call by call through the runner,
    then the batched ones through their batch APIs."""
    done, started = prior.done, prior.started
    batched = {t.index for t in runner.plan if t.model.alias in models} - done
    stats = await runner.run(replace(prior, done=done | batched))
    stats.planned += len(batched)
    executor = BatchExecutor(runner.spec, runner.renderer, runner.store, runner.run_id, models,
                             client=runner.client, sleep=runner.sleep, stats=stats,
                             on_progress=runner.on_progress)
    try:
        return await executor.run(done, started)
    except BatchFailed as exc:
        raise BatchFailed(f"{exc}; every finished call is saved; finish with: promptlab "
                          f"resume {runner.run_id}") from None
