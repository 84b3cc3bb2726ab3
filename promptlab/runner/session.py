"""The session: the one place a run's lifecycle is written.

A session records the run row, starts the servers its models need, drives the `Runner`
over the plan, runs what comes after (scoring) and sets the final status: completed,
stopped (a budget), interrupted (Ctrl-C or SIGTERM) or failed. `run`, `resume`,
`reproduce --live`, the LLM judge and the tests all go through it.

The session owns its run while it runs (see `promptlab.store.ownership`): the run row
names this process, a heartbeat thread refreshes it every few seconds, and `resume`
takes a run over only when its owner is dead. SIGTERM is handled like Ctrl-C: the
runner is cancelled, whatever finished is committed, the run is interrupted.
"""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from promptlab.batch import batched_models, run_batched
from promptlab.errors import UserError
from promptlab.grid import Plan, ShardPlan
from promptlab.ids import new_run_id
from promptlab.redaction import Scrubber
from promptlab.runner.client import Sender
from promptlab.runner.engine import Runner
from promptlab.runner.loop import loop_factory
from promptlab.runner.records import RunStats
from promptlab.servers.managed import managed_servers, resolve_fallbacks
from promptlab.spec import ExperimentSpec
from promptlab.store import Prior, Store
from promptlab.store.ownership import HEARTBEAT_S, new_token
from promptlab.templates import Renderer

if TYPE_CHECKING:
    import httpx

__all__ = ["NewRun", "Progress", "RunOutcome", "Session"]

# Given the number of trials to send, a context manager yielding the progress callback.
Progress = Callable[[int], AbstractContextManager[Callable[[RunStats], None]]]
# After a run's calls (and not after Ctrl-C): e.g. scoring. Takes the store and run id.
After = Callable[[Store, str], None]
T = TypeVar("T")


class _Stop:
    """Runs a coroutine in its own event loop; `stop` cancels it from a signal handler or
    another thread. Outside the loop, a SIGTERM raises KeyboardInterrupt like Ctrl-C."""

    def __init__(self, loop: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        self._loop_factory = loop
        self.reason: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        async def main() -> T:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            try:
                return await coro
            finally:
                self._loop = self._task = None

        try:
            with asyncio.Runner(loop_factory=self._loop_factory) as runner:
                result = runner.run(main())
        except asyncio.CancelledError:
            if self.reason is None:
                raise
            raise KeyboardInterrupt from None
        if self.reason is not None:  # stopped just as the last call finished: still a stop
            raise KeyboardInterrupt
        return result

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with suppress(RuntimeError):  # the loop closed meanwhile: the run is over
                loop.call_soon_threadsafe(task.cancel)
        elif reason == "terminated":  # in the signal handler, outside the event loop
            raise KeyboardInterrupt


_ACTIVE: list[_Stop] = []  # sessions running in this process, innermost (a judge's) last


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if not _ACTIVE:
        raise KeyboardInterrupt
    _ACTIVE[-1].stop("terminated")


@contextmanager
def _sigterm_stops(stop: _Stop) -> Iterator[None]:
    """While a session runs, SIGTERM stops it like Ctrl-C: only from the main thread and
    only when nobody else handles SIGTERM (an application's own handler is left alone)."""
    installed = False
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            installed = True
    _ACTIVE.append(stop)
    try:
        yield
    finally:
        _ACTIVE.remove(stop)
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def _heartbeat(store: Store, run_id: str, token: str, interval_s: float,
               on_lost: Callable[[], None]) -> Iterator[None]:
    """A thread that refreshes the run's heartbeat every `interval_s` (one UPDATE); if the
    run was taken over (this process stalled past the staleness timeout), `on_lost`."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval_s):
            try:
                mine = store.beat(run_id, token)
            except Exception:  # a busy database: the next beat tries again
                continue
            if not mine:
                on_lost()
                return

    thread = threading.Thread(target=beat, name=f"promptlab-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@dataclass(frozen=True)
class NewRun:
    """What the run row records besides the plan: provenance for reproducing it."""

    config: dict[str, Any]
    overrides: Sequence[str] = ()
    manifest: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    sweep_id: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    db_url: str
    stats: RunStats
    status: str


class Session:
    """Runs one spec against one store; the world (client, sleep, clock, rng) is injected."""

    def __init__(self, store: Store, spec: ExperimentSpec, renderer: Renderer, *,
                 client: httpx.AsyncClient | Sender | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None,
                 progress: Progress | None = None,
                 notice: Callable[[str, str], None] = lambda kind, text: None,
                 where: Mapping[str, str] | None = None,
                 after: After | None = None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.store = store
        self.spec = spec
        self.renderer = renderer
        self.client = client
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.progress = progress
        self.notice = notice
        self.where = dict(where or {})
        self.after = after
        self.heartbeat_s = heartbeat_s
        self._tokens: dict[str, str] = {}  # run id -> owner token, from start or resume
        self._loop = loop_factory()  # PROMPTLAB_EVENT_LOOP, checked before any run row

    def start(self, new: NewRun, run_id: str | None = None) -> str:
        """Record the run (status running, owned by this process); returns its id."""
        batched_models(self.spec)  # a model without a batch API: refused before the run row
        run_id = run_id or new_run_id()
        token = new_token()
        self.store.create_run(
            run_id=run_id, name=self.spec.name, planned=len(Plan(self.spec)),
            config=new.config, overrides=new.overrides, manifest=new.manifest,
            artifacts=new.artifacts, scrub=Scrubber(self.spec.models),
            parent_run_id=new.parent_run_id, sweep_id=new.sweep_id, owner_token=token,
            index_at_end=True)
        self._tokens[run_id] = token
        return run_id

    def run(self, new: NewRun, run_id: str | None = None) -> RunOutcome:
        """Record a new run and send every trial."""
        return self.execute(self.start(new, run_id))

    def resume(self, run_id: str) -> RunOutcome:
        """Send only the trials of a recorded run that have no ok result (errors and skips
        again too, also of a completed run). Refuses while the run's owner lives."""
        self.store.check_free(run_id)
        plan = Plan(self.spec)
        for idx, key in self.store.stored_keys(run_id).items():
            if idx >= len(plan) or plan.trial(idx).key != key:
                raise UserError(f"run {run_id}: the plan rebuilt from the database does not "
                                f"match its stored trial {idx}; it cannot be resumed, start a "
                                "new run")
        # Atomic: of two resumes at once, the second is refused here.
        self._tokens[run_id] = self.store.claim(run_id)
        return self.execute(run_id, self.store.progress_of(run_id))

    def execute(self, run_id: str, prior: Prior | None = None) -> RunOutcome:
        """Servers up, the runner over the plan, `after`, then the final status.

        The run must be this session's (`start` or `resume`), or free to take over."""
        token = self._tokens.pop(run_id, None) or self.store.claim(run_id)
        prior = prior or Prior()
        status = "failed"
        stop = _Stop(self._loop)
        try:
            spec = resolve_fallbacks(self.spec, lambda text: self.notice("note", text))
            with (_heartbeat(self.store, run_id, token, self.heartbeat_s,
                             lambda: stop.stop("taken over")),
                  _sigterm_stops(stop)):
                with managed_servers(spec, self.where) as live_spec:
                    runner = Runner(live_spec, self.renderer, self.store, run_id,
                                    client=self.client, sleep=self.sleep, clock=self.clock,
                                    rng=self.rng)
                    view = (self.progress(runner.stats.planned) if self.progress is not None
                            else nullcontext(None))
                    with view as on_progress:
                        runner.on_progress = on_progress
                        batched = batched_models(live_spec)
                        stats = stop.run(
                            run_batched(runner, batched, prior) if batched
                            else runner.run(prior))
                status = "stopped" if stats.budget_stop else "completed"
                if self.after is not None:
                    self.after(self.store, run_id)
        except KeyboardInterrupt:
            status = "interrupted"
            if stop.reason == "taken over":
                owner = self.store.owner_of(run_id)
                self.notice("interrupted", f"run {run_id} was taken over by pid {owner.pid} "
                                           f"on {owner.host} while this process stalled; "
                                           "every finished call is saved")
            else:
                self.notice("interrupted", "every finished call is saved; finish with: "
                                           f"promptlab resume {run_id}")
            raise
        finally:
            self.store.release(run_id, token, status)
        return RunOutcome(run_id, self.store.url, stats, status)

    def run_shard(self, run_id: str, shard: int, shards: int) -> RunStats:
        """Send one shard's trials of a run that another process owns (the one that
        launched the shards: it heartbeats the run, scores it and sets its status).

        A shard starts fresh: finishing a run whose shard died is `resume`'s work."""
        stop = _Stop(self._loop)
        spec = resolve_fallbacks(self.spec, lambda text: self.notice("note", text))
        with _sigterm_stops(stop), managed_servers(spec, self.where) as live_spec:
            runner = Runner(live_spec, self.renderer, self.store, run_id, client=self.client,
                            sleep=self.sleep, clock=self.clock, rng=self.rng)
            runner.plan = ShardPlan(runner.plan, shard, shards)  # type: ignore[assignment]
            return stop.run(runner.run())

    def hold(self, run_id: str, work: Callable[[], str | None]) -> RunOutcome:
        """Own a run while `work` (e.g. launching its shards) fills it; then, when every
        trial has a result, `after` and status completed, else interrupted. `work` returns
        why it failed, or None."""
        token = self._tokens.pop(run_id, None) or self.store.claim(run_id)
        status = "failed"
        stop = _Stop(self._loop)
        start = time.perf_counter()
        try:
            with (_heartbeat(self.store, run_id, token, self.heartbeat_s,
                             lambda: stop.stop("taken over")), _sigterm_stops(stop)):
                problem = work()
                info = self.store.run(run_id)
                if info.done >= info.planned:
                    status = "completed"
                    if self.after is not None:
                        self.after(self.store, run_id)
                else:
                    status = "interrupted"
                    self.notice("interrupted", f"{problem or 'a shard did not finish'}; "
                                f"{info.planned - info.done:,} trials without a result; "
                                f"finish with: promptlab resume {run_id}")
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.store.release(run_id, token, status)
        info = self.store.run(run_id)
        stats = RunStats(planned=info.planned, done=info.done, ok=info.done - info.errors,
                         errors=info.errors, elapsed_s=time.perf_counter() - start)
        return RunOutcome(run_id, self.store.url, stats, status)
