"""Shards: one run's trials split over N workers (`run.shards=N`).

The launching process records the run and owns it (its heartbeat keeps `resume` away);
it hands N copies of the job to the configured Hydra launcher (`launch_copies`), and each
copy, told its number by the launcher, sends the trials whose index falls in its shard
(`grid.shard_of`) into the same run of the same database. When the launcher returns,
the owner scores the run and marks it completed if every trial has a result; a shard
that died leaves the run interrupted, and `promptlab resume RUN` sends only what is
missing.

Without a shared database (``run.shard_db="results-{shard}.db"``) each shard records the
run in its own SQLite file, with only its own trials; the launching process merges the
files it can reach into the run's database (`Store.merge_from`) before it finishes the
run. Files written on other hosts are merged by hand: `promptlab merge ... -o all.db`.
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
from promptlab.experiment.sweep import job_db
from promptlab.grid import Plan
from promptlab.manifest import collect_manifest
from promptlab.runner.records import RunStats
from promptlab.runner.session import NewRun, RunOutcome
from promptlab.store import Store

__all__ = ["ShardContext", "ShardSummary", "run_sharded", "shard_file", "shard_job"]


@dataclass(frozen=True)
class ShardContext:
    run_id: str
    shards: int
    db: str | None  # --db or $PROMPTLAB_DB in the launching process
    cwd: str = "."  # the launching process's directory: relative paths are from there
    shard_db: str | None = None  # run.shard_db: a file name with {shard}


@dataclass(frozen=True)
class ShardSummary:
    shard: int
    done: int
    errors: int
    elapsed_s: float
    cached: int = 0
    attempts: int = 0
    cost_usd: float = 0.0


def shard_file(pattern: str, shard: int, cwd: str) -> str:
    """The URL of one shard's own SQLite file (``run.shard_db``)."""
    return job_db(pattern.format(shard=shard), None, cwd)


def _check_shard_db(pattern: str | None, shards: int, main_db: str, cwd: str) -> None:
    """A usable `run.shard_db`: a file name with {shard} in it, in a directory that exists,
    never the run's own database (`main_db`, a URL)."""
    if pattern is None:
        return
    fix = "give a SQLite file name with {shard} in it, e.g. run.shard_db='results-{shard}.db'"
    if "://" in pattern:
        raise UserError(f"run.shard_db={pattern}: each shard writes a SQLite file; {fix} (a "
                        "shared database is --db, without run.shard_db)")
    try:
        names = {pattern.format(shard=i) for i in range(2)}
    except (KeyError, IndexError, ValueError):
        raise UserError(f"run.shard_db={pattern}: {fix}") from None
    if len(names) < 2:
        raise UserError(f"run.shard_db={pattern}: every shard would write the same file; {fix}")
    main = Path(main_db.removeprefix("sqlite:///")).resolve() if main_db.startswith(
        "sqlite:///") else None
    for i in range(shards):
        path = Path(shard_file(pattern, i, cwd).removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            raise UserError(f"run.shard_db={pattern}: directory {path.parent} does not exist; "
                            "create it or give another path")
        if main is not None and path.resolve() == main:
            raise UserError(f"run.shard_db={pattern}: shard {i}'s file {path} is the run's "
                            "database (--db); give shard files names of their own")


def _new_run(loaded: LoadedConfig, prepared: Prepared) -> NewRun:
    manifest = {**collect_manifest(loaded.root), "choices": loaded.choices}
    return NewRun(config=loaded.config, overrides=loaded.overrides, manifest=manifest,
                  artifacts=prepared.artifacts)


def shard_job(loaded: LoadedConfig, num: int, ctx: ShardContext) -> ShardSummary:
    """One shard, in whatever process the launcher chose: its trials into the run."""
    prepared = prepare(loaded)
    start = time.perf_counter()
    if ctx.shard_db is None:
        with Store.open(job_db(ctx.db, loaded.config.get("db"), ctx.cwd)) as store:
            session = session_for(prepared, store, progress=False)
            stats = session.run_shard(ctx.run_id, num, ctx.shards)
    else:
        # Its own file: the run's row (same id, same experiment) and this shard's trials,
        # left interrupted (a part of the run) until the files are merged.
        with Store.open(shard_file(ctx.shard_db, num, ctx.cwd)) as store:
            session = session_for(prepared, store, progress=False)
            session.notice = lambda kind, text: None
            # Scored here, so that merged files carry their scores (scoring replaces, so
            # the launcher scoring the merged run again changes nothing).
            score, session.after = session.after, None
            done: list[RunStats] = []

            def work() -> None:
                done.append(session.run_shard(ctx.run_id, num, ctx.shards))
                if score is not None:
                    score(store, ctx.run_id)

            session.start(_new_run(loaded, prepared), ctx.run_id)
            session.hold(ctx.run_id, work)
            stats = done[0]
    return ShardSummary(num, stats.done, stats.errors, time.perf_counter() - start,
                        stats.cached, stats.attempts, stats.cost_usd)


def _merge_shard_files(store: Store, ctx: ShardContext, console: Console) -> list[str]:
    """Merge the shard files this host can reach into the run's database; the problems."""
    assert ctx.shard_db is not None
    problems = []
    for i in range(ctx.shards):
        url = shard_file(ctx.shard_db, i, ctx.cwd)
        path = url.removeprefix("sqlite:///")
        if not Path(path).is_file():
            problems.append(f"shard {i}'s file {path} is not on this host: merge it with "
                            f"promptlab merge {path} ... -o {store.display_url}")
            continue
        with Store.open(url, read_only=True) as source:
            counts = store.merge_from(source.engine, path, complete=False)
        console.print(f"shard {i}: {counts.added.get('results', 0):,} results merged from "
                      f"{path}")
    return problems


def run_sharded(loaded: LoadedConfig, prepared: Prepared, store: Store, *,
                db: str | None, overrides: Sequence[str], console: Console,
                launch: Callable[..., list[JobResult]] = launch_copies) -> RunOutcome:
    """Record the run, launch its shards through Hydra's launcher, finish the run."""
    shards = prepared.spec.run.shards
    if shards < 1:
        raise UserError(f"run.shards={shards}: give a number of shards, 1 or more")
    if prepared.spec.run.batch:
        raise UserError("run.batch and run.shards do not combine: a batch run is one process "
                        "polling; drop run.shards")
    cwd = str(Path.cwd())
    _check_shard_db(prepared.spec.run.shard_db, shards,
                    job_db(db, loaded.config.get("db"), cwd), cwd)
    trials = len(Plan(prepared.spec))
    if shards > trials:
        console.print(f"run.shards={shards}: {trials:,} trials to send; "
                      f"{max(trials, 1):,} shards launched")
        shards = max(trials, 1)
    session = session_for(prepared, store, console=console, progress=False)
    run_id = session.start(_new_run(loaded, prepared))
    console.print(f"run {run_id}: {shards} shards")
    ctx = ShardContext(run_id, shards, db, cwd, prepared.spec.run.shard_db)

    finished: list[ShardSummary] = []

    def work() -> str | None:
        try:
            results = launch(Path(loaded.config_dir), list(overrides), shards, shard_job, ctx)
        except Exception as exc:  # a worker killed under the launcher, a lost node
            return f"the launcher failed: {type(exc).__name__}: {str(exc)[:200]}"
        problems = []
        for r in results:
            if r.error is not None:
                problems.append(f"shard {r.num} failed: {r.error}")
                console.print(f"[red]shard {r.num} failed:[/] {r.error}")
            else:
                s = r.value
                finished.append(s)
                rate = s.done / s.elapsed_s if s.elapsed_s > 0 else 0.0
                console.print(f"shard {s.shard}: {s.done:,} calls ({s.errors:,} errors) in "
                              f"{s.elapsed_s:.2f}s = {rate:,.0f} calls/s")
        if ctx.shard_db is not None:
            problems += _merge_shard_files(store, ctx, console)
        return "; ".join(problems) or None

    outcome = session.hold(run_id, work)
    # What only the shards saw: their cache hits, attempts and cost.
    outcome.stats.cached = sum(s.cached for s in finished)
    outcome.stats.attempts = sum(s.attempts for s in finished)
    outcome.stats.cost_usd = sum(s.cost_usd for s in finished)
    return outcome
