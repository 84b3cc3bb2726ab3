"""One job of a sweep (`promptlab run -m`), as Hydra's launcher runs it.

`sweep_job` is the module-level target a `promptlab.config.launch.LaunchJob` calls in
whatever process the launcher chose (this one, a joblib worker, a SLURM node): it
prepares the composed experiment, runs it into the database and brings back a small
picklable `JobSummary`. Its errors come back as values (see `LaunchJob`), so one failing
job never stops the others.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from promptlab.config.loading import LoadedConfig
from promptlab.experiment.launch import run_experiment
from promptlab.experiment.prepare import prepare
from promptlab.gate import Gate, check_names, evaluate
from promptlab.store import DEFAULT_DB, Store, resolve_url

__all__ = ["JobSummary", "SweepContext", "job_db", "sweep_job"]


def job_db(db: str | None, configured: str | None, cwd: str) -> str:
    """The database URL of a job, the same in whatever process or host the launcher chose:
    a relative file path is the launching process's (a Ray worker runs in a directory of
    Ray's). `db` is --db or $PROMPTLAB_DB as the launching process saw them."""
    value = db or configured or DEFAULT_DB
    if "://" in value:
        return value
    return resolve_url(str(Path(cwd) / Path(value).expanduser()))


@dataclass(frozen=True)
class SweepContext:
    """What every job of a sweep shares."""

    sweep_id: str
    db: str | None = None  # --db or $PROMPTLAB_DB in the launching process
    progress: bool = False
    gates: tuple[Gate, ...] = ()
    cwd: str = "."  # the launching process's directory: relative paths are from there


@dataclass(frozen=True)
class JobSummary:
    run_id: str
    status: str
    done: int
    ok: int
    errors: int
    cost_usd: float
    started_s: float  # wall-clock (time.time) start and end of the job's run
    finished_s: float
    failed_gates: tuple[str, ...]
    db_url: str
    problem: str | None = None  # the commonest error, "24 x auth: ..."

    @property
    def all_ok(self) -> bool:
        return self.status == "completed" and self.errors == 0 and not self.failed_gates


def sweep_job(loaded: LoadedConfig, num: int, ctx: SweepContext) -> JobSummary:
    """Run one job of a sweep to the end and summarise it."""
    prepared = prepare(loaded)
    check_names(list(ctx.gates), prepared.scorers.scorers, f"job {num}")
    started = time.time()
    with Store.open(job_db(ctx.db, loaded.config.get("db"), ctx.cwd)) as store:
        outcome = run_experiment(loaded, store=store, prepared=prepared,
                                 progress=ctx.progress, sweep_id=ctx.sweep_id)
        info = store.run(outcome.run_id)
        gates = tuple(evaluate(store, [outcome.run_id], list(ctx.gates)))
        problem = next((f"{n:,} x {kind}: {error}"
                        for kind, error, n in store.common_errors(outcome.run_id, 1)), None)
        summary = JobSummary(
            outcome.run_id, outcome.status, info.done, info.done - info.errors, info.errors,
            outcome.stats.cost_usd, started, time.time(), gates, store.display_url, problem)
    print(f"job {num}: run {summary.run_id} {summary.status}, {summary.done:,} calls "
          f"({summary.errors:,} errors) in {summary.finished_s - summary.started_s:.2f}s",
          file=sys.stderr, flush=True)
    return summary
