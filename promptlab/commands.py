"""Subcommand handlers: thin glue between the parser and the modules that do the work."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promptlab.errors import UserError
from promptlab.reports.aggregate import aggregate_runs
from promptlab.reports.render import render_text, rich_table
from promptlab.store import open_engine, resolve_url
from promptlab.store.queries import (
    get_run,
    list_runs,
    resolve_run_id,
    scorer_names,
)

if TYPE_CHECKING:
    from promptlab.config.loading import LoadedConfig
    from promptlab.launch import RunOutcome

__all__ = ["cmd_run", "cmd_plan", "cmd_resume", "cmd_cache", "cmd_runs", "cmd_report",
           "cmd_score", "cmd_compare", "cmd_mock_server"]


def _err() -> Console:
    return Console(stderr=True, highlight=False,
                   width=None if sys.stderr.isatty() else 160)


def _out() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def find_experiments_dir(explicit: str | None) -> Path:
    from promptlab.config.loading import find_experiments_dir as find

    return find(explicit)


def load(config_dir: Path, overrides: list[str]) -> LoadedConfig:
    # Hydra and OmegaConf load only for the commands that compose a config.
    from promptlab.config.loading import load as compose

    return compose(config_dir, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from promptlab.launch import run_experiment

    config_dir = find_experiments_dir(args.experiments)
    if args.multirun:
        return _multirun(args, config_dir)
    loaded = load(config_dir, args.overrides)
    if args.cfg:
        sys.stdout.write(OmegaConf.to_yaml(OmegaConf.create(loaded.config)))
        return 0
    if args.dry_run:
        return _plan(loaded, args.db)
    err = _err()
    outcome = run_experiment(loaded, db=args.db, console=err,
                             progress=False if args.no_progress else None)
    _summary(outcome, err)
    return 0


def _multirun(args: argparse.Namespace, config_dir: Path) -> int:
    from promptlab.experiment import prepare
    from promptlab.launch import run_experiment
    from promptlab.sweep import expand_sweep, new_sweep_id

    jobs = expand_sweep(args.overrides)
    # Every job composes and renders before the first sends anything.
    ready = []
    for job in jobs:
        loaded = load(config_dir, job)
        ready.append((job, loaded, prepare(loaded)))
    sweep_id = new_sweep_id()
    err = _err()
    err.print(f"sweep {sweep_id}: {len(jobs)} jobs")
    db_url = None
    for i, (job, loaded, prepared) in enumerate(ready):
        err.print(f"[bold]job {i}:[/] {escape(' '.join(job))}")
        outcome = run_experiment(loaded, db=args.db, console=err, prepared=prepared,
                                 progress=False if args.no_progress else None,
                                 sweep_id=sweep_id)
        db_url = outcome.db_url
        _summary(outcome, err)
    err.print(f"compare the jobs: promptlab report --sweep {sweep_id} --by model,prompt"
              + (f" --db {escape(_safe_url(db_url))}" if args.db and db_url else ""))
    return 0


def _safe_url(url: str) -> str:
    """A database URL fit to print: any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _summary(outcome: RunOutcome, err: Console) -> None:
    stats = outcome.stats
    engine = open_engine(outcome.db_url)
    groups = aggregate_runs(engine, [outcome.run_id], ["model", "prompt"])
    _out().print(rich_table(groups, ["model", "prompt"], f"run {outcome.run_id}",
                            scorer_names(engine, outcome.run_id)))
    rate = stats.done / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    err.print(f"{stats.done:,} calls ({stats.ok:,} ok, {stats.cached:,} cached, "
              f"{stats.errors:,} errors, {stats.skipped:,} skipped, {stats.attempts:,} attempts) "
              f"in {stats.elapsed_s:.2f}s = {rate:,.0f} calls/s, ${stats.cost_usd:.4f}; saved "
              f"to {escape(_safe_url(outcome.db_url))}")
    for alias, reason in stats.stopped_models.items():
        err.print(f"[red]model {escape(alias)} stopped:[/] {escape(reason)}")
    if stats.budget_stop:
        err.print(f"[yellow]stopped:[/] {escape(stats.budget_stop)}; raise it and finish with: "
                  f"promptlab resume {outcome.run_id} run.max_calls=... run.max_cost_usd=...")
    err.print(f"next: promptlab report {outcome.run_id} --by model,prompt")
    engine.dispose()


def _plan(loaded: LoadedConfig, db: str | None) -> int:
    from promptlab.estimate import estimate
    from promptlab.experiment import prepare
    from promptlab.store import Store

    prepared = prepare(loaded)
    engine = open_engine(resolve_url(db, loaded.config.get("db")))
    est = estimate(prepared, Store(engine), cache=prepared.spec.run.cache != "off")
    out = _out()
    table = Table(title=f"plan: {escape(prepared.spec.name)} (nothing sent)",
                  title_justify="left")
    for col in ("model", "calls", "cached", "to send", "est. tokens in", "est. tokens out",
                "est. cost $"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for alias, g in est.by_model.items():
        table.add_row(escape(alias), f"{int(g['calls']):,}", f"{int(g['cached']):,}",
                      f"{int(g['calls'] - g['cached']):,}", f"{int(g['input_tokens']):,}",
                      f"{int(g['output_tokens']):,}", f"{g['cost_usd']:.4f}")
    table.add_row("[bold]total", f"{est.calls:,}", f"{est.cached:,}",
                  f"{est.calls - est.cached:,}", f"{est.input_tokens:,}",
                  f"{est.output_tokens:,}", f"{est.cost_usd:.4f}")
    out.print(table)
    out.print(f"first prompt (params {escape(json.dumps(est.first_params))}):")
    for m in est.first_messages:
        out.print(f"  [bold]{m['role']}:[/] {escape(m['content'])}")
    engine.dispose()
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    loaded = load(find_experiments_dir(args.experiments), args.overrides)
    if args.count:
        return _count(loaded)
    return _plan(loaded, args.db)


def _count(loaded: LoadedConfig) -> int:
    """The plan's size and its first and last trials, without walking it."""
    from promptlab.experiment import prepare
    from promptlab.grid import Plan

    plan = Plan(prepare(loaded).spec)
    out = _out()
    out.print(f"{len(plan):,} trials")
    for label, index in (("first", 0), ("last", -1)):
        t = plan.trial(index)
        out.print(f"{label}: #{t.index} model={escape(t.model.alias)} prompt="
                  f"{escape(t.prompt.name)} row={escape(t.row.id)} repeat={t.repeat} "
                  f"params={escape(json.dumps(t.params, sort_keys=True))} key={t.key[:16]}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from promptlab.launch import resume_run

    db_url = resolve_url(args.db)
    engine = open_engine(db_url)
    run_id = resolve_run_id(engine, args.run_id)
    info = get_run(engine, run_id)
    if info.status == "completed" and info.done >= info.planned:
        Console(stderr=True).print(f"run {run_id} is already complete; nothing to resume")
        return 0
    experiments = Path(args.experiments) if args.experiments else Path.cwd() / "experiments"
    err = _err()
    outcome = resume_run(engine, db_url, run_id, overrides=args.overrides,
                         experiments=experiments, console=err,
                         progress=False if args.no_progress else None)
    _summary(outcome, err)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from promptlab.explain import explain_cache

    engine = open_engine(resolve_url(args.db))
    run_id = resolve_run_id(engine, args.run_id)
    for line in explain_cache(engine, run_id, args.trial):
        print(line)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    engine = open_engine(resolve_url(args.db))
    runs = list_runs(engine, name=args.name, status=args.status, limit=args.limit,
                     since=_date(args.since, "--since"), until=_date(args.until, "--until"),
                     sweep=args.sweep)
    table = Table(title="runs", title_justify="left")
    for col in ("id", "name", "status", "started (UTC)", "duration", "results", "errors",
                "parent / sweep"):
        table.add_column(col, justify="right" if col in ("results", "errors") else "left")
    for r in runs:
        duration = (f"{(r.finished_at - r.created_at).total_seconds():.1f}s"
                    if r.finished_at else "-")
        table.add_row(r.id, escape(r.name), r.status, f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                      duration, f"{r.done:,}/{r.planned:,}", f"{r.errors:,}",
                      r.parent_run_id or r.sweep_id or "")
    _out().print(table)
    return 0


def _date(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: not a date; write 2026-11-25 or "
                        "2026-11-25T14:00") from None
    return when.replace(tzinfo=None)


def cmd_report(args: argparse.Namespace) -> int:
    engine = open_engine(resolve_url(args.db))
    if args.sweep:
        return _report_sweep(args, engine)
    run_id = resolve_run_id(engine, args.run_id)
    info = get_run(engine, run_id)
    dims = [d.strip() for d in args.by.split(",") if d.strip()]
    if not dims:
        raise UserError("--by: give at least one dimension, e.g. --by model,prompt")
    known = {"model", "prompt", "row", "repeat"}
    params = set()
    grid = info.config.get("grid", {}).get("params", {})
    params.update(grid)
    for m in info.config.get("models", {}).values():
        params.update(m.get("params", {}))
    unknown = [d for d in dims if d not in known | params]
    if unknown:
        raise UserError(f"--by: '{unknown[0]}' is not a dimension of run {run_id}; use one of: "
                        f"{', '.join(sorted(known | params))}")
    groups = aggregate_runs(engine, [run_id], dims)
    scorers = scorer_names(engine, run_id)
    meta = {"run_id": run_id, "name": info.name, "status": info.status}
    if args.format == "table" and not args.output:
        _out().print(rich_table(groups, dims, f"run {run_id} ({escape(info.name)}, "
                                              f"{info.status})", scorers))
        return 0
    if args.format == "html":
        from promptlab.reports.html import render_html

        text = render_html(engine, info, groups, dims, scorers)
    else:
        fmt = "markdown" if args.format == "table" else args.format
        text = render_text(groups, dims, fmt, meta, scorers)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from promptlab.provenance_cmd import cmd_reproduce as run

    return run(args)


def cmd_show(args: argparse.Namespace) -> int:
    from promptlab.provenance_cmd import cmd_show as run

    return run(args)


def cmd_export(args: argparse.Namespace) -> int:
    from promptlab.provenance_cmd import cmd_export as run

    return run(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from promptlab.compare_cmd import cmd_compare as run_compare

    return run_compare(args)


def cmd_score(args: argparse.Namespace) -> int:
    from promptlab.rebuild import from_database
    from promptlab.scoring import build_scorers, score_run

    engine = open_engine(resolve_url(args.db))
    run_id = resolve_run_id(engine, args.run_id)
    info, prepared = from_database(engine, run_id, check_api_keys=False)
    experiments = Path(args.experiments) if args.experiments else Path.cwd() / "experiments"
    if (experiments / "config.yaml").is_file():
        current = load(experiments, list(info.overrides)).config
        where = str(experiments / "config.yaml")
    else:
        current, where = info.config, f"run {run_id}"
    scorers = build_scorers(current, where)
    if not scorers:
        raise UserError(f"{where}: no scorers configured; add a 'scorers:' section")
    n = score_run(engine, run_id, prepared, scorers)
    Console(stderr=True).print(f"{n:,} scores written for run {run_id}")
    groups = aggregate_runs(engine, [run_id], ["model", "prompt"])
    _out().print(rich_table(groups, ["model", "prompt"], f"run {run_id}",
                            scorer_names(engine, run_id)))
    return 0


def _report_sweep(args: argparse.Namespace, engine: Any) -> int:
    runs = list_runs(engine, sweep=args.sweep, limit=100_000)
    if not runs:
        raise UserError(f"--sweep {args.sweep}: no runs in this sweep; list sweeps with "
                        "'promptlab runs'")
    dims = [d.strip() for d in args.by.split(",") if d.strip()]
    groups = aggregate_runs(engine, [r.id for r in runs], dims)
    scorers = sorted({s for r in runs for s in scorer_names(engine, r.id)})
    meta = {"run_id": args.sweep, "name": f"sweep of {len(runs)} runs", "status": "sweep"}
    if args.format == "table" and not args.output:
        _out().print(rich_table(groups, dims, f"sweep {args.sweep} ({len(runs)} runs)",
                                scorers))
        return 0
    text = render_text(groups, dims, "markdown" if args.format in ("table", "html")
                       else args.format, meta, scorers)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _watch_parent(pid: int) -> None:
    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except OSError:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def cmd_mock_server(args: argparse.Namespace) -> int:
    from promptlab.testing.mock_server import MockConfig, serve

    faults = {k: getattr(args, f"fault_{k}") for k in ("429", "500", "529", "slow", "drop",
                                                        "malformed")}
    config = MockConfig(latency_ms=args.latency_ms, faults={k: v for k, v in faults.items() if v},
                        slow_ms=args.slow_ms, seed=args.seed, api_key=args.api_key)
    if args.parent_pid:
        _watch_parent(args.parent_pid)
    print(f"mock LLM server on http://127.0.0.1:{args.port}/v1", flush=True)
    serve(args.port, config)
    return 0
