"""The session: the one place a run's lifecycle is written.

A session records the run row, starts the servers its models need, drives the `Runner`
over the plan, runs what comes after (scoring) and sets the final status: completed,
stopped (a budget), interrupted (Ctrl-C) or failed. `run`, `resume`, `reproduce --live`,
the LLM judge and the tests all go through it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import httpx

from promptlab.errors import UserError
from promptlab.grid import Plan
from promptlab.ids import new_run_id
from promptlab.redaction import Scrubber
from promptlab.runner.client import Sender
from promptlab.runner.engine import Runner
from promptlab.runner.records import RunStats
from promptlab.servers.managed import managed_servers, resolve_fallbacks
from promptlab.spec import ExperimentSpec
from promptlab.store import Store
from promptlab.templates import Renderer

__all__ = ["NewRun", "Progress", "RunOutcome", "Session"]

# Given the number of trials to send, a context manager yielding the progress callback.
Progress = Callable[[int], AbstractContextManager[Callable[[RunStats], None]]]
# After a run's calls (and not after Ctrl-C): e.g. scoring. Takes the store and run id.
After = Callable[[Store, str], None]


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
                 after: After | None = None) -> None:
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

    def start(self, new: NewRun, run_id: str | None = None) -> str:
        """Record the run (status running); returns its id."""
        run_id = run_id or new_run_id()
        self.store.create_run(
            run_id=run_id, name=self.spec.name, planned=len(Plan(self.spec)),
            config=new.config, overrides=new.overrides, manifest=new.manifest,
            artifacts=new.artifacts, scrub=Scrubber(self.spec.models),
            parent_run_id=new.parent_run_id, sweep_id=new.sweep_id)
        return run_id

    def run(self, new: NewRun, run_id: str | None = None) -> RunOutcome:
        """Record a new run and send every trial."""
        return self.execute(self.start(new, run_id))

    def resume(self, run_id: str) -> RunOutcome:
        """Send only the trials of a recorded run that have no ok result."""
        plan = Plan(self.spec)
        for idx, key in self.store.stored_keys(run_id).items():
            if idx >= len(plan) or plan.trial(idx).key != key:
                raise UserError(f"run {run_id}: the plan rebuilt from the database does not "
                                f"match its stored trial {idx}; it cannot be resumed, start a "
                                "new run")
        done, started, cost = self.store.progress_of(run_id)
        self.store.set_status(run_id, "running")
        return self.execute(run_id, done=done, started=started, prior_cost=cost)

    def execute(self, run_id: str, *, done: set[int] | frozenset[int] = frozenset(),
                started: dict[int, int] | None = None, prior_cost: float = 0.0
                ) -> RunOutcome:
        """Servers up, the runner over the plan, `after`, then the final status."""
        spec = resolve_fallbacks(self.spec, lambda text: self.notice("note", text))
        status = "failed"
        try:
            with managed_servers(spec, self.where) as live_spec:
                runner = Runner(live_spec, self.renderer, self.store, run_id,
                                client=self.client, sleep=self.sleep, clock=self.clock,
                                rng=self.rng)
                view = (self.progress(runner.stats.planned) if self.progress is not None
                        else nullcontext(None))
                with view as on_progress:
                    runner.on_progress = on_progress
                    stats = asyncio.run(runner.run(frozenset(done), started, prior_cost))
            status = "stopped" if stats.budget_stop else "completed"
            if self.after is not None:
                self.after(self.store, run_id)
        except KeyboardInterrupt:
            status = "interrupted"
            self.notice("interrupted", "every finished call is saved; finish with: "
                                       f"promptlab resume {run_id}")
            raise
        finally:
            self.store.finish_run(run_id, status)
        return RunOutcome(run_id, self.store.url, stats, status)
