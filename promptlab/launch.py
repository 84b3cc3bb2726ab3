"""Run an experiment: prepare it, start its servers, record the run, drive the runner.

Also resume: rebuild an unfinished run from the database and finish only what is missing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Engine

from promptlab.config.loading import LoadedConfig, source_file
from promptlab.errors import UserError
from promptlab.experiment import Prepared, prepare
from promptlab.grid import Plan
from promptlab.ids import new_run_id
from promptlab.manifest import collect_manifest
from promptlab.rebuild import check_against_disk, from_database
from promptlab.redaction import Scrubber
from promptlab.runner import Runner, RunStats
from promptlab.servers.managed import managed_servers, resolve_fallbacks
from promptlab.store import Store, open_engine, resolve_url

__all__ = ["RunOutcome", "new_run_id", "run_experiment", "resume_run"]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    db_url: str
    stats: RunStats
    status: str


class _ProgressView:
    def __init__(self, console: Console, total: int) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[cached]} cached"),
            TextColumn("{task.fields[rate]:.0f} calls/s"), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)
        self.task = self.progress.add_task("calls", total=total, failed=0, cached=0, rate=0.0)
        self._t0 = self.progress.get_time()

    def __call__(self, stats: RunStats) -> None:
        elapsed = max(self.progress.get_time() - self._t0, 1e-6)
        self.progress.update(self.task, total=stats.planned, completed=stats.done,
                             failed=stats.errors + stats.skipped, cached=stats.cached,
                             rate=stats.done / elapsed)


def _execute(prepared: Prepared, loaded: LoadedConfig, store: Store, run_id: str, *,
             client: httpx.AsyncClient | None, console: Console, show: bool,
             done: set[int] | None = None, started: dict[int, int] | None = None,
             prior_cost: float = 0.0) -> tuple[RunStats, str]:
    where = {m.alias: source_file(f"models.{m.alias}", loaded.choices, loaded.config_dir)
             for m in prepared.spec.models}
    spec = resolve_fallbacks(prepared.spec,
                             lambda text: console.print(f"[yellow]note:[/] {escape(text)}"))
    with managed_servers(spec, where) as live_spec:
        runner = Runner(replace(prepared, spec=live_spec), store, run_id, client=client)
        view = _ProgressView(console, runner.stats.planned) if show else None
        runner.on_progress = view
        status = "failed"
        try:
            coro = runner.run(frozenset(done or ()), started, prior_cost)
            if view is not None:
                with view.progress:
                    stats = asyncio.run(coro)
            else:
                stats = asyncio.run(coro)
            status = "stopped" if stats.budget_stop else "completed"
            if prepared.scorers:
                from promptlab.scoring import score_run

                score_run(store.engine, run_id, prepared, prepared.scorers)
        except KeyboardInterrupt:
            status = "interrupted"
            console.print(f"[yellow]interrupted:[/] every finished call is saved; finish with: "
                          f"promptlab resume {run_id}")
            raise
        finally:
            store.finish_run(run_id, status)
    return stats, status


def run_experiment(
    loaded: LoadedConfig,
    *,
    db: str | None = None,
    client: httpx.AsyncClient | None = None,
    console: Console | None = None,
    progress: bool | None = None,
    prepared: Prepared | None = None,
    sweep_id: str | None = None,
) -> RunOutcome:
    """Run a composed experiment to the end; every user error is raised before any call."""
    console = console or Console(stderr=True)
    prepared = prepared or prepare(loaded)
    db_url = resolve_url(db, loaded.config.get("db"))
    engine = open_engine(db_url)
    store = Store(engine)
    run_id = new_run_id()
    manifest = {**collect_manifest(loaded.root), "choices": loaded.choices}
    store.create_run(run_id=run_id, name=prepared.spec.name, planned=len(Plan(prepared.spec)),
                     config=loaded.config, overrides=loaded.overrides, manifest=manifest,
                     artifacts=prepared.artifacts, scrub=Scrubber(prepared.spec.models),
                     sweep_id=sweep_id)
    show = prepared.spec.run.progress if progress is None else progress
    try:
        stats, status = _execute(prepared, loaded, store, run_id, client=client,
                                 console=console, show=show)
    finally:
        engine.dispose()
    return RunOutcome(run_id, db_url, stats, status)


def resume_run(
    engine: Engine,
    db_url: str,
    run_id: str,
    *,
    overrides: list[str] | None = None,
    experiments: Path | None = None,
    client: httpx.AsyncClient | None = None,
    console: Console | None = None,
    progress: bool | None = None,
) -> RunOutcome:
    """Finish an unfinished run: only trials without an ok result are sent again."""
    console = console or Console(stderr=True)
    info, prepared = from_database(engine, run_id, overrides)
    check_against_disk(info, prepared, experiments)
    store = Store(engine)
    plan = Plan(prepared.spec)
    for idx, key in store.stored_keys(run_id).items():
        if idx >= len(plan) or plan.trial(idx).key != key:
            raise UserError(f"run {run_id}: the plan rebuilt from the database does not match "
                            f"its stored trial {idx}; it cannot be resumed, start a new run")
    done, started, cost = store.progress_of(run_id)
    store.set_status(run_id, "running")
    show = prepared.spec.run.progress if progress is None else progress
    stats, status = _execute(prepared, prepared.loaded, store, run_id, client=client,
                             console=console, show=show, done=done, started=started,
                             prior_cost=cost)
    return RunOutcome(run_id, db_url, stats, status)
