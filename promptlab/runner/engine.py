"""The runner: the one place that sends, times, limits, retries, caches and records.

A feeder walks the lazy plan in chunks: it renders and builds each request, looks the
chunk's fingerprints up in the cache with one query, records hits at once and queues the
misses. A bounded pool of workers sends them through one shared client under per-endpoint
limits, and hands each finished trial to one writer, which commits in batches off the
event loop. Should the writer give up (the database refuses even error rows), the feeder
stops and queued calls are dropped unsent: a call that cannot be recorded is not paid for.
The clock, `sleep`, the random source and the HTTP client are injected.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from promptlab.errors import ProviderError
from promptlab.grid import Plan
from promptlab.providers.base import ProviderResponse
from promptlab.redaction import Scrubber, redact_headers, redact_url
from promptlab.runner.calls import CallBuilder, Pending, estimated_cost
from promptlab.runner.client import Sender, SendError, SendTimeout, as_sender
from promptlab.runner.endpoint import Endpoint, budget_spent, endpoints_of, lanes
from promptlab.runner.exchange import Exchange, exchange
from promptlab.runner.records import Call, Outcome, Recorder, RunStats, same_request, with_n
from promptlab.runner.retry import RetryPolicy, reset_wait_s, retry_after_s
from promptlab.runner.slots import Seat, Sending, Slots
from promptlab.spec import ExperimentSpec, Trial
from promptlab.store import Prior, Record, Store, utcnow
from promptlab.store.writer import BatchWriter, fit_int, trial_writer
from promptlab.templates import Renderer

if TYPE_CHECKING:
    import httpx

__all__ = ["Call", "Runner", "RunStats"]

Hits = dict[str, tuple[str, int]]  # fingerprint -> the stored result answering it

# Records finished but not yet stored (or writer.BEHIND_BYTES of them) before the feeder
# waits: without a bound a database slower than the calls held the difference in memory
# (a 1,000,000-call run grew past 460 MB, ~70,000 records behind; 176-180 MB at 20,000).
BACKLOG = 20_000


class Runner:
    def __init__(self, spec: ExperimentSpec, renderer: Renderer, store: Store, run_id: str, *,
                 client: httpx.AsyncClient | Sender | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
                 on_progress: Callable[[RunStats], None] | None = None,
                 max_backlog: int = BACKLOG) -> None:
        self.spec = spec
        self.renderer = renderer
        self.store = store
        self.run_id = run_id
        self.client = client
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_progress = on_progress
        self.max_backlog = max(max_backlog, 2 * spec.run.batch_size)  # a batch or two, at least
        run = self.spec.run
        self.policy = RetryPolicy(run.max_attempts, run.backoff_base_s, run.backoff_max_s)
        self.plan = Plan(self.spec)
        self.stats = RunStats(planned=len(self.plan))
        self._writer: BatchWriter
        self._endpoint_of = endpoints_of(spec.models, clock, sleep, run.concurrency)
        self._headers_json: dict[str, str] = {}
        self._urls: dict[str, str] = {}
        self._scrub = Scrubber(self.spec.models)
        self._stopped: dict[str, str] = {}
        self._recorder = Recorder(run_id, self.stats, self._scrub, run.cache,
                                  images=renderer.images.payloads())
        self._calls = CallBuilder(spec, renderer, self._recorder)
        self._reserved = 0.0  # estimated cost of calls sent but not finished
        self._finished_one = asyncio.Event()

    # -- orchestration -------------------------------------------------------------------

    async def run(self, prior: Prior | None = None) -> RunStats:
        """Run every trial not done before (`prior`, on a resume); commits as it goes, even
        when cancelled. Trials started before keep their rows and number their attempts on."""
        prior = prior or Prior()
        done, started = prior.done, prior.started
        self.stats.planned = len(self.plan) - len(done)
        self.stats.cost_usd = self.stats.prior_cost_usd = prior.cost_usd
        self.stats.prior_calls = prior.calls
        n = min(self.spec.run.concurrency, max(self.stats.planned, 1))
        client, own_client = as_sender(self.client, n)
        self._sending = Sending(n)
        # A lane per endpoint, with its own slots: an endpoint that makes its calls wait
        # holds up no other endpoint's (slots.py).
        lanes_ = [(models, Slots(min(n, endpoint.ceiling)))
                  for models, endpoint in lanes(self.spec.models, self._endpoint_of)]
        start = time.perf_counter()
        self._writer = trial_writer(self.store, self.spec.run.batch_size)
        progress, on_progress = self.stats, self.on_progress
        ticker = (asyncio.create_task(self._every(0.1, lambda: on_progress(progress)))
                  if on_progress else None)
        # Commit what finished at least every 0.25 s, however slow the calls are.
        flusher = asyncio.create_task(self._every(0.25, self._writer.flush))
        tasks = [task for models, slots in lanes_
                 for task in self._lane(client, slots, models, done, started)]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            self.stats.interrupted = True
            raise
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if ticker is not None:
                ticker.cancel()
            flusher.cancel()
            if own_client:
                await asyncio.shield(client.aclose())
            # Whatever finished is committed, even on Ctrl-C; if the writer gave up, what it
            # kept is tried once more and its error raised.
            self._writer.close()
            # Records the database took only as error rows are errors in the summary too.
            ok, skipped = (self._writer.demoted.get(s, 0) for s in ("ok", "skipped"))
            self.stats.ok, self.stats.skipped = self.stats.ok - ok, self.stats.skipped - skipped
            self.stats.errors += ok + skipped
            self.stats.elapsed_s = time.perf_counter() - start
            self.stats.stopped_models = dict(self._stopped)
            if self.on_progress:
                self.on_progress(self.stats)
        return self.stats

    def _lane(self, client: Sender, slots: Slots, models: list[int],
              done: frozenset[int] | set[int], started: dict[int, int]
              ) -> list[asyncio.Task[None]]:
        queue: asyncio.Queue[Call | None] = asyncio.Queue(maxsize=slots.workers)
        left = (t for t in self.plan.of_models(models) if t.index not in done)
        return [asyncio.create_task(self._feed(queue, left, started, slots.workers)),
                *(asyncio.create_task(self._worker(client, queue, slots.seat()))
                  for _ in range(slots.workers))]

    @staticmethod
    async def _every(seconds: float, action: Callable[[], None]) -> None:
        while True:
            action()
            await asyncio.sleep(seconds)

    def _emit(self, record: Record) -> None:
        self._writer.put(record)

    def _look_up(self, chunk: list[Pending]) -> asyncio.Future[Hits]:
        """The chunk's cache hits, looked up on a thread: started now, awaited later."""
        keys = [p.cache_key for p in chunk] if self.spec.run.cache != "off" else []
        return asyncio.ensure_future(asyncio.to_thread(self.store.cache_sources, keys))

    async def _feed(self, queue: asyncio.Queue[Call | None], trials: Iterator[Trial],
                    started: dict[int, int], n_workers: int) -> None:
        # No `finally` here: when the run is cancelled the workers are cancelled too, and
        # waiting to hand them an end marker through a full queue would hang Ctrl-C.
        await self._feed_chunks(queue, trials, started)
        for _ in range(n_workers):
            await queue.put(None)

    async def _feed_chunks(self, queue: asyncio.Queue[Call | None], trials: Iterator[Trial],
                           started: dict[int, int]) -> None:
        """Dispatch chunk after chunk. Each chunk's lookup starts before the previous chunk
        is dispatched, so the database looks up while the loop records hits and queues
        calls (a cached re-run of 10,000 trials: 1.03 -> 1.01 s)."""
        previous: tuple[list[Pending], asyncio.Future[Hits]] | None = None
        ahead: asyncio.Future[Hits] | None = None
        try:
            for number, chunk in enumerate(self._calls.chunks(trials, started)):
                ahead = self._look_up(chunk)
                if previous is not None and not await self._dispatch(*previous, queue):
                    return
                previous = (chunk, ahead)
                if number == 0:  # the first chunk goes out at once
                    previous = None
                    if not await self._dispatch(chunk, ahead, queue):
                        return
            if previous is not None:
                await self._dispatch(*previous, queue)
        finally:  # lookups stopped before they were needed (a done one: nothing happens)
            for lookup in (ahead, previous[1] if previous else None):
                if lookup is not None:
                    lookup.cancel()

    async def _dispatch(self, chunk: list[Pending], lookup: asyncio.Future[Hits],
                        queue: asyncio.Queue[Call | None]) -> bool:
        """Record cache hits, queue the rest; False once a budget or the writer stops the run."""
        await self._wait_for_writer()
        if self._writer.failed.is_set():
            return False
        hits = await lookup
        leader: Call | None = None
        for pending in chunk:
            hit = hits.get(pending.cache_key)
            if hit is not None:
                self._emit(self._recorder.record_hit(pending, pending.prior is not None, hit))
                continue
            call = self._calls.call(pending)
            if leader is not None and same_request(leader, call):
                leader.siblings.append(call)
                continue
            if leader is not None:
                if not await self._enqueue(with_n(leader), queue):
                    return False
                leader = None
            if call.trial.model.repeats_as_n and not call.trial.model.stream:
                leader = call
                continue
            if not await self._enqueue(call, queue):
                return False
        if leader is not None:
            return await self._enqueue(with_n(leader), queue)
        return True

    async def _wait_for_writer(self) -> None:
        while self._writer.behind(self.max_backlog) and not self._writer.failed.is_set():
            await asyncio.sleep(0.005)  # real time: the writer is a real thread

    async def _enqueue(self, call: Call, queue: asyncio.Queue[Call | None]) -> bool:
        """Queue one call under the budgets; False once a budget or the writer stops the run.
        Every lane's feeder checks the same budgets: the checks and the count go together,
        after the last wait."""
        run = self.spec.run
        await self._wait_for_writer()
        reserve = estimated_cost(call)
        if run.max_cost_usd is not None:
            # Hold back while calls in flight could take the run over budget.
            while (self._reserved > 1e-12 and not self._writer.failed.is_set()
                   and self.stats.cost_usd + self._reserved + reserve > run.max_cost_usd):
                self._finished_one.clear()
                await self._finished_one.wait()
        if self._writer.failed.is_set() or not self.stats.take_call(run):
            return False
        self._reserved += reserve
        await queue.put(call)
        return True

    async def _worker(self, client: Sender, queue: asyncio.Queue[Call | None], seat: Seat) -> None:
        while True:
            call = await seat.next_call(queue)  # and a slot to send it (slots.py)
            if call is None:
                seat.give()
                return
            if self._writer.failed.is_set():  # it could not be recorded: not sent
                self.stats.calls -= 1
                self._reserved -= estimated_cost(call)
                self._finished_one.set()
                continue
            endpoint = self._endpoint_of[call.trial.model.alias]
            if endpoint.stopped is not None:
                outcome = Outcome(None, [], None, "skipped", endpoint.stopped)
            else:
                outcome = await self._send(client, call, endpoint, seat)
            self._reserved -= estimated_cost(call)
            self._emit(self._recorder.record(call, outcome))
            for i, sibling in enumerate(call.siblings, 1):
                if outcome.choices is not None and len(outcome.choices) > i:
                    shared = Outcome(outcome.choices[i], [], outcome.latency_ms, None, None,
                                      sample_of=f"{self.run_id}:{call.trial.index}")
                elif outcome.response is None:  # the call failed: so did its samples
                    shared = Outcome(None, [], None, outcome.error_kind, outcome.error)
                elif self.stats.take_call(self.spec.run):  # fewer choices: this one alone
                    shared = await self._send(client, sibling, endpoint, seat)
                else:  # over a budget: not sent, not recorded (a resume sends it)
                    continue
                self._emit(self._recorder.record(sibling, shared))
            self._finished_one.set()

    # -- one trial -------------------------------------------------------------------------

    async def _send(self, client: Sender, call: Call, endpoint: Endpoint, seat: Seat) -> Outcome:
        attempts: list[dict[str, Any]] = []
        try:
            return await self._tries(client, call, endpoint, attempts, seat)
        except asyncio.CancelledError:
            # Stopped between tries (a Retry-After wait): the attempts were sent, so they
            # are recorded, with an error result that resume sends again.
            if attempts:
                last = attempts[-1]
                self._emit(self._recorder.record(call, Outcome(
                    None, attempts, None, last["error_kind"],
                    f"{last['error']}; stopped while waiting to try again")))
            raise

    async def _tries(self, client: Sender, call: Call, endpoint: Endpoint,
                     attempts: list[dict[str, Any]], seat: Seat) -> Outcome:
        model, http = call.trial.model, call.http
        provider = self._calls.providers[model.alias]
        timeout = model.timeout_s or self.spec.run.timeout_s
        headers_json = self._headers_json.get(model.alias)
        if headers_json is None:
            headers_json = json.dumps(redact_headers(http.headers, http.secret_headers))
            self._headers_json[model.alias] = headers_json
        url = self._urls.get(http.url)
        if url is None:
            url = self._scrub(redact_url(http.url, model.secret_params)) or ""
            self._urls[http.url] = url
        body_text = self._scrub(http.body.decode("utf-8"))
        number = call.prior_attempts
        tries = 0
        while True:
            number += 1
            tries += 1
            seq = await endpoint.acquire(call.est_tokens)
            if not await self._sending.take(endpoint):  # one of the run's places, or stopped
                endpoint.release()
                return Outcome(None, attempts, None, "skipped", endpoint.stopped)
            started_at = utcnow()
            t0 = time.perf_counter()
            got = Exchange()
            kind: str | None = None
            error: str | None = None
            wait = reset = None  # a server's wait, and its budget's reset (on a 429)
            spent = False
            parsed: ProviderResponse | None = None
            choices: list[ProviderResponse] | None = None
            try:
                await exchange(client, http, timeout, provider, model.stream, t0, got)
                status, raw, parsed = got.status, got.raw, got.parsed
                assert status is not None and raw is not None
                if 300 <= status < 400:  # not followed: the API key would go along
                    kind = "fatal"
                    error = (f"HTTP {status}: redirect to {got.headers.get('location', '?')} "
                             "not followed; set base_url to the address it points at")
                elif status >= 400:
                    kind = provider.classify(model, status, raw)
                    error = f"HTTP {status}: {raw[:500].decode('utf-8', 'replace')}"
                    wait = retry_after_s(got.headers)
                    if kind == "rate_limit":  # (headers read here: a surprise is an error)
                        reset, spent = reset_wait_s(got.headers), budget_spent(got.headers)
                        wait = reset if wait is None else wait
                elif parsed is None:
                    parse_choices = getattr(provider, "parse_choices", None)
                    if call.siblings and parse_choices is not None:
                        choices = parse_choices(model, status, raw)
                        parsed = choices[0]
                    else:
                        parsed = provider.parse_response(model, status, raw)
            except SendTimeout:
                kind, error = "transient", f"timeout after {timeout:g}s"
            except SendError as exc:
                kind, error = "transient", str(exc)
            except ProviderError as exc:
                kind, error = exc.kind, str(exc)
            except Exception as exc:  # a defect of ours on an odd answer: this trial's only
                kind, error = "fatal", f"promptlab could not handle the answer: {exc!r}"
            finally:
                endpoint.release()
                self._sending.give()
            duration_ms = (time.perf_counter() - t0) * 1000
            self.stats.attempts += 1
            attempts.append({
                "run_id": self.run_id, "idx": call.trial.index, "number": number,
                "started_at": started_at, "duration_ms": duration_ms, "url": url,
                "request_headers_json": headers_json, "request_body": body_text,
                "status_code": got.status,
                "response_body": self._scrub(got.raw.decode("utf-8", "replace"))
                if got.raw is not None else None,
                "error_kind": kind, "error": self._scrub(error),
                "retry_after_ms": wait * 1000 if wait is not None else None,
            })
            if kind != "rate_limit" and got.status is not None:
                endpoint.answered()
            if kind is None:
                outcome = Outcome(parsed, attempts, duration_ms, None, None, choices=choices)
                if got.ttft_ms is not None and parsed is not None:
                    outcome.ttft_ms = got.ttft_ms
                    decode_s = (duration_ms - got.ttft_ms) / 1000
                    tokens = fit_int(parsed.output_tokens)  # a server may send text
                    if tokens and decode_s > 0:
                        outcome.tokens_per_s = tokens / decode_s
                return outcome
            if kind == "auth":
                reason = (f"stopped after an auth failure on model '{model.alias}' "
                          f"({self._scrub(error)}); check its API key")
                if endpoint.stopped is None:
                    endpoint.stopped = reason
                self._stopped.setdefault(model.alias, reason)
            retry = self.policy.should_retry(kind, tries)
            delay = (self.policy.delay(tries, wait, self.rng) if retry
                     else wait if wait is not None else self.policy.backoff_base_s)
            # A 429 halves the endpoint's concurrency (or its pace), a trial's last one too;
            # this request waits its Retry-After, everyone else only when the endpoint pauses.
            paused = kind == "rate_limit" and endpoint.rate_limited(seq, delay, spent, reset)
            if not retry:
                return Outcome(None, attempts, duration_ms, kind, self._scrub(error))
            if not paused:
                await seat.wait(self.sleep(delay))  # its slot goes to another call meanwhile
