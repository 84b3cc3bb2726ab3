"""Run an experiment: prepare it, start its servers, record the run, drive the runner."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from promptlab.config.loading import LoadedConfig, source_file
from promptlab.experiment import Prepared, prepare
from promptlab.grid import Plan
from promptlab.manifest import collect_manifest
from promptlab.runner import Runner, RunStats
from promptlab.servers.managed import managed_servers
from promptlab.store import Store, open_engine, resolve_url

__all__ = ["RunOutcome", "new_run_id", "run_experiment"]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    db_url: str
    stats: RunStats


def new_run_id() -> str:
    """Sortable by time, unique by a random suffix: 20261125-081500-3fa2c1."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class _ProgressView:
    def __init__(self, console: Console, total: int) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]:.0f} calls/s"), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)
        self.task = self.progress.add_task("calls", total=total, failed=0, rate=0.0)
        self._t0 = self.progress.get_time()

    def __call__(self, stats: RunStats) -> None:
        elapsed = max(self.progress.get_time() - self._t0, 1e-6)
        self.progress.update(self.task, completed=stats.done,
                             failed=stats.errors + stats.skipped, rate=stats.done / elapsed)


def run_experiment(
    loaded: LoadedConfig,
    *,
    db: str | None = None,
    client: httpx.AsyncClient | None = None,
    console: Console | None = None,
    progress: bool | None = None,
    prepared: Prepared | None = None,
) -> RunOutcome:
    """Run a composed experiment to the end; every user error is raised before any call."""
    console = console or Console(stderr=True)
    prepared = prepared or prepare(loaded)
    db_url = resolve_url(db, loaded.config.get("db"))
    engine = open_engine(db_url)
    store = Store(engine)
    plan = Plan(prepared.spec)
    run_id = new_run_id()
    where = {m.alias: source_file(f"models.{m.alias}", loaded.choices, loaded.config_dir)
             for m in prepared.spec.models}
    show = prepared.spec.run.progress if progress is None else progress
    with managed_servers(prepared.spec, where) as live_spec:
        store.create_run(run_id=run_id, name=prepared.spec.name, planned=len(plan),
                         config=loaded.config, overrides=loaded.overrides,
                         manifest=collect_manifest(loaded.root), artifacts=prepared.artifacts)
        runner_input = replace(prepared, spec=live_spec)
        view = _ProgressView(console, len(plan)) if show else None
        runner = Runner(runner_input, store, run_id, client=client, on_progress=view)
        status = "failed"
        try:
            if view is not None:
                with view.progress:
                    stats = asyncio.run(runner.run())
            else:
                stats = asyncio.run(runner.run())
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            store.finish_run(run_id, status)
            engine.dispose()
    return RunOutcome(run_id, db_url, stats)
