"""Shards: one run's trials split over N workers (`run.shards=N`).

The launching process records the run and owns it (its heartbeat keeps `resume` away);
it hands N copies of the job to the configured Hydra launcher (`launch_copies`), and each
copy, told its number by the launcher, sends the trials whose index falls in its shard
(`grid.shard_of`) into the same run of the same database. When the launcher returns,
the owner scores the run and marks it completed if every trial has a result; a shard
that died leaves the run interrupted, and `promptlab resume RUN` sends only what is
missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from promptlab.config.launch import JobResult, launch_copies
from promptlab.config.loading import LoadedConfig
from promptlab.errors import UserError
from promptlab.experiment.launch import session_for
from promptlab.experiment.prepare import Prepared, prepare
from promptlab.manifest import collect_manifest
from promptlab.runner.session import NewRun, RunOutcome
from promptlab.store import Store

__all__ = ["ShardContext", "ShardSummary", "run_sharded", "shard_job"]


@dataclass(frozen=True)
class ShardContext:
    run_id: str
    shards: int
    db: str | None


@dataclass(frozen=True)
class ShardSummary:
    shard: int
    done: int
    errors: int
    elapsed_s: float


def shard_job(loaded: LoadedConfig, num: int, ctx: ShardContext) -> ShardSummary:
    """One shard, in whatever process the launcher chose: its trials into the run."""
    prepared = prepare(loaded)
    with Store.open(ctx.db, configured=loaded.config.get("db")) as store:
        session = session_for(prepared, store, progress=False)
        start = time.perf_counter()
        stats = session.run_shard(ctx.run_id, num, ctx.shards)
    return ShardSummary(num, stats.done, stats.errors, time.perf_counter() - start)


def run_sharded(loaded: LoadedConfig, prepared: Prepared, store: Store, *,
                db: str | None, overrides: Sequence[str], console: Console,
                launch: Callable[..., list[JobResult]] = launch_copies) -> RunOutcome:
    """Record the run, launch its shards through Hydra's launcher, finish the run."""
    shards = prepared.spec.run.shards
    if shards < 1:
        raise UserError(f"run.shards={shards}: give a number of shards, 1 or more")
    manifest = {**collect_manifest(loaded.root), "choices": loaded.choices}
    session = session_for(prepared, store, console=console, progress=False)
    run_id = session.start(NewRun(config=loaded.config, overrides=loaded.overrides,
                                  manifest=manifest, artifacts=prepared.artifacts))
    console.print(f"run {run_id}: {shards} shards")

    def work() -> str | None:
        try:
            results = launch(Path(loaded.config_dir), list(overrides), shards, shard_job,
                             ShardContext(run_id, shards, db))
        except Exception as exc:  # a worker killed under the launcher, a lost node
            return f"the launcher failed: {type(exc).__name__}: {str(exc)[:200]}"
        problems = []
        for r in results:
            if r.error is not None:
                problems.append(f"shard {r.num} failed: {r.error}")
                console.print(f"[red]shard {r.num} failed:[/] {r.error}")
            else:
                s = r.value
                rate = s.done / s.elapsed_s if s.elapsed_s > 0 else 0.0
                console.print(f"shard {s.shard}: {s.done:,} calls ({s.errors:,} errors) in "
                              f"{s.elapsed_s:.2f}s = {rate:,.0f} calls/s")
        return "; ".join(problems) or None

    return session.hold(run_id, work)
