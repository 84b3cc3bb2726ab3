"""`run`, `plan` and `resume`: compose an experiment with Hydra and send it.

Exit codes of `run` and `resume` (README, "Runs you can trust"): 0 every trial of the run
ok; 1 some trial ended in error or was skipped, a budget stopped the run, or a
--fail-under gate failed; 2 a user error (main); 130 interrupted, by Ctrl-C or SIGTERM
(main).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promptlab.cli.common import (
    add_db,
    err_console,
    open_store,
    out_console,
    print_scorer_failures,
)
from promptlab.cli.startup import start_up
from promptlab.errors import UserError
from promptlab.gate import Gate, check_names, evaluate, parse_gates

if TYPE_CHECKING:
    from promptlab.config.loading import LoadedConfig
    from promptlab.experiment.prepare import Prepared
    from promptlab.runner.session import RunOutcome
    from promptlab.store import Store

__all__ = ["add_fail_under", "register"]


def add_fail_under(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fail-under", action="append", metavar="SCORER=VALUE",
                   help="exit 1 when the scorer's pass rate (or mean, for a numeric scorer) "
                        "over the run is below VALUE; repeatable, e.g. --fail-under exact=0.9")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run", help="run an experiment (Hydra overrides as arguments)",
        description="Compose experiments/config.yaml with Hydra overrides, render every prompt, "
                    "then send every call and record it. Examples: 'promptlab run "
                    "+experiment=example', \"promptlab run 'models=[mock-openai]' "
                    "run.concurrency=64\".")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. grid.repeats=3")
    run.add_argument("--cfg", choices=["job", "all"], help="print the composed config and exit")
    run.add_argument("-m", "--multirun", action="store_true",
                     help="sweep: one run per combination of comma-separated override values "
                          "('models=[a],[b]' run.concurrency=8,16), sharing a sweep id")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (calls, cached, tokens, cost) and send nothing")
    add_db(run)
    run.add_argument("--experiments", metavar="DIR",
                     help="the experiments directory (default: ./experiments)")
    add_fail_under(run)
    run.set_defaults(handler=cmd_run)

    plan = sub.add_parser(
        "plan", help="dry run: calls, cached calls, estimated tokens and cost; sends nothing",
        description="Compose and render everything like 'run', then print the number of calls, "
                    "how many the cache would answer, estimated tokens and cost (from the "
                    "models' price tables) and the first rendered prompt.")
    plan.add_argument("overrides", nargs="*", help="Hydra overrides, as for run")
    plan.add_argument("--count", action="store_true",
                      help="only the number of trials and the first and last (no estimate)")
    add_db(plan)
    plan.add_argument("--experiments", metavar="DIR")
    plan.set_defaults(handler=cmd_plan)

    resume = sub.add_parser(
        "resume", help="finish an interrupted or stopped run without repeating a call",
        description="Rebuild a run from the database and send only the trials without an ok "
                    "result (errors and skipped trials of a completed run too). Refuses if the "
                    "experiment on disk no longer matches, or while the process running it is "
                    "alive. run.* settings may change, e.g. run.max_cost_usd=5. Exit 0 when "
                    "every trial is then ok, 1 when not.")
    resume.add_argument("run_id", help="run id, unique prefix, or 'latest'")
    resume.add_argument("overrides", nargs="*", help="run.* overrides, e.g. run.concurrency=8")
    resume.add_argument("--no-progress", action="store_true")
    add_db(resume)
    resume.add_argument("--experiments", metavar="DIR",
                        help="compare against this experiments directory (default: "
                             "./experiments when present)")
    resume.set_defaults(handler=cmd_resume)


def _load(experiments: str | None, overrides: list[str]) -> LoadedConfig:
    # Hydra and OmegaConf load only for the commands that compose a config.
    from promptlab.config.loading import find_experiments_dir, load

    return load(find_experiments_dir(experiments), overrides)


# What `run` and `plan` import after composing, loaded in their start-up block.
PLAN_MODULES = ("promptlab.experiment.prepare",)
RUN_MODULES = (*PLAN_MODULES, "promptlab.experiment.launch")


def cmd_run(args: argparse.Namespace) -> int:
    gates = parse_gates(args.fail_under)
    if args.multirun:
        return _multirun(args, gates)
    with start_up(*(() if args.cfg else PLAN_MODULES if args.dry_run else RUN_MODULES)):
        loaded = _compose(args)
    if args.cfg:
        from promptlab.config.stored import to_yaml

        sys.stdout.write(to_yaml(loaded.config))
        return 0
    if args.dry_run:
        return _plan(loaded, args.db)
    from promptlab.experiment.launch import run_experiment
    from promptlab.experiment.prepare import prepare

    with start_up():  # what prepare builds (the renders) lives to the end too
        prepared = prepare(loaded)
    check_names(gates, prepared.scorers.scorers, "the experiment")
    err = err_console()
    if prepared.spec.run.shards > 1:
        return _sharded(args, loaded, prepared, gates)
    with open_store(args.db, loaded.config.get("db")) as store:
        outcome = run_experiment(loaded, store=store, console=err, prepared=prepared,
                                 progress=False if args.no_progress else None)
        _summary(outcome, store, err)
        return _exit_code(outcome, store, gates, err)


def _compose(args: argparse.Namespace) -> LoadedConfig:
    from promptlab.config.overrides import hydra_overrides, task_overrides

    loaded = _load(args.experiments, args.overrides)  # the launcher's overrides checked too
    if hydra_overrides(args.overrides):
        # A run records the experiment's overrides; the launcher's own (hydra/launcher=...,
        # for run.shards) stay on the command.
        loaded = _load(args.experiments, task_overrides(args.overrides))
    return loaded


def _sharded(args: argparse.Namespace, loaded: LoadedConfig, prepared: Prepared,
             gates: list[Gate]) -> int:
    """`run.shards=N`: one run, its trials over N workers of the Hydra launcher."""
    from promptlab.experiment.shard import run_sharded

    err = err_console()
    with open_store(args.db, loaded.config.get("db")) as store:
        outcome = run_sharded(loaded, prepared, store, db=args.db or os.environ.get("PROMPTLAB_DB"),
                              overrides=args.overrides,
                              console=err)
        _summary(outcome, store, err)
        return _exit_code(outcome, store, gates, err)


def _exit_code(outcome: RunOutcome, store: Store, gates: list[Gate], err: Console) -> int:
    """0 when every trial of the run is ok and every gate passes, else 1."""
    info = store.run(outcome.run_id)
    code = 0 if outcome.status == "completed" and info.done - info.errors >= info.planned else 1
    for line in evaluate(store, [outcome.run_id], gates):
        err.print(f"[red]{escape(line)}[/]")
        code = 1
    return code


def _multirun(args: argparse.Namespace, gates: list[Gate]) -> int:
    """A sweep through Hydra's own sweeper and launcher (see promptlab.config.launch)."""
    from promptlab.config.launch import LaunchFailed, multirun
    from promptlab.config.loading import find_experiments_dir, load
    from promptlab.config.overrides import hydra_overrides
    from promptlab.config.sweep import expand_sweep, new_sweep_id, uses_own_sweeper
    from promptlab.experiment.prepare import prepare
    from promptlab.experiment.sweep import SweepContext, job_db, sweep_job

    config_dir = find_experiments_dir(args.experiments)
    configured = None
    if not uses_own_sweeper(args.overrides):
        # Every job composes and renders before the first sends anything.
        for job in expand_sweep(args.overrides):
            prepared = prepare(load(config_dir, job))
            configured = prepared.loaded.config.get("db")
            check_names(gates, prepared.scorers.scorers, f"job {' '.join(job)}")
            if prepared.spec.run.shards > 1:
                raise UserError(f"job {' '.join(job)}: run.shards with -m: shard a single "
                                "run, or sweep without run.shards")
    sweep_id = new_sweep_id()
    err = err_console()
    launcher = [o for o in hydra_overrides(args.overrides) if o.startswith("hydra/")]
    err.print(f"sweep {sweep_id}" + (f" ({escape(' '.join(launcher))})" if launcher else ""))
    db = args.db or os.environ.get("PROMPTLAB_DB")
    try:
        results = multirun(config_dir, args.overrides, sweep_job,
                           SweepContext(sweep_id, db, False, tuple(gates), os.getcwd()))
    except LaunchFailed as exc:
        err.print(f"the launcher failed: {escape(str(exc))}")
        _list_sweep(sweep_id, job_db(db, configured, os.getcwd()), err)
        return 1
    code = 0
    shown_db = None
    for r in results:
        label = escape(" ".join(r.overrides) or "(no overrides)")
        if r.error is not None:
            err.print(f"[red]job {r.num} failed:[/] {label}: {escape(r.error)}")
            code = 1
            continue
        s = r.value
        shown_db = s.db_url
        mark = "[green]ok[/]" if s.all_ok else "[yellow]not ok[/]"
        err.print(f"job {r.num} {mark}: {label}: run {s.run_id} {s.status}, {s.done:,} calls, "
                  f"{s.errors:,} errors, ${s.cost_usd:.4f}"
                  + (f"; {escape(s.problem[:160])}" if s.problem else "")
                  + "".join(f"; {escape(g)}" for g in s.failed_gates))
        code = max(code, 0 if s.all_ok else 1)
    failed = sum(r.error is not None for r in results)
    ok = sum(r.error is None and r.value.all_ok for r in results)
    err.print(f"sweep {sweep_id}: {len(results)} jobs: {ok} ok, {len(results) - ok - failed} "
              f"not ok, {failed} failed")
    err.print(f"compare the jobs: promptlab report --sweep {sweep_id} --by model,prompt"
              + (f" --db {escape(shown_db)}" if args.db and shown_db else ""))
    return code


def _list_sweep(sweep_id: str, db: str, err: Console) -> None:
    """The runs a sweep recorded before its launcher failed, one line each."""
    with open_store(db, read_only=True) as store:
        runs = store.runs(sweep=sweep_id, limit=10_000)
    for r in reversed(runs):
        finish = "" if r.status == "completed" else f"; finish with: promptlab resume {r.id}"
        err.print(f"run {r.id} {r.status}: {r.done:,} of {r.planned:,} calls, {r.errors:,} "
                  f"errors{finish}", soft_wrap=True)
    err.print(f"sweep {sweep_id}: {len(runs)} runs recorded before the launcher failed")


def _summary(outcome: RunOutcome, store: Store, err: Console) -> None:
    from promptlab.progress import rate_text
    from promptlab.reports.aggregate import aggregate_runs
    from promptlab.reports.render import rich_table

    stats = outcome.stats
    groups = aggregate_runs(store, [outcome.run_id], ["model", "prompt"])
    out_console().print(rich_table(groups, ["model", "prompt"], f"run {outcome.run_id}",
                                   store.scorer_names(outcome.run_id)))
    rate = stats.done / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    cost = f"${stats.cost_usd:.4f}"
    if stats.prior_cost_usd:  # a resume: what it spent, then the run's whole
        cost = f"${stats.cost_usd - stats.prior_cost_usd:.4f} (the run's total {cost})"
    err.print(f"{stats.done:,} calls ({stats.ok:,} ok, {stats.cached:,} cached, "
              f"{stats.errors:,} errors, {stats.skipped:,} skipped, {stats.attempts:,} attempts) "
              f"in {stats.elapsed_s:.2f}s = {rate_text(rate)} calls/s, {cost}; saved "
              f"to {escape(store.display_url)}")
    for alias, reason in stats.stopped_models.items():
        err.print(f"[red]model {escape(alias)} stopped:[/] {escape(reason)}")
    for kind, error, count in store.common_errors(outcome.run_id):
        err.print(f"[red]{count:,} x {escape(kind)}:[/] {escape(error)}")
    print_scorer_failures(err, store, outcome.run_id)
    if stats.errors or stats.skipped:
        err.print(f"[yellow]{stats.errors + stats.skipped:,} trials without an ok result[/] "
                  f"({stats.errors:,} errors, {stats.skipped:,} skipped); send them again with: "
                  f"promptlab resume {outcome.run_id}")
    if stats.budget_stop:
        err.print(f"[yellow]stopped:[/] {escape(stats.budget_stop)}; raise it and finish with: "
                  f"promptlab resume {outcome.run_id} run.max_calls=... run.max_cost_usd=...")
    err.print(f"next: promptlab report {outcome.run_id} --by model,prompt")


def _plan(loaded: LoadedConfig, db: str | None) -> int:
    from promptlab.experiment.estimate import estimate
    from promptlab.experiment.prepare import prepare

    prepared = prepare(loaded, check_api_keys=False)  # a plan sends nothing: no key needed
    with open_store(db, loaded.config.get("db")) as store:
        est = estimate(prepared, store, cache=prepared.spec.run.cache != "off")
    out = out_console()
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
    if est.batch_calls:
        out.print(f"by batch: {est.batch_calls:,} of the calls to send, priced at the batch price")
    out.print(f"first prompt (params {escape(json.dumps(est.first_params))}):")
    for m in est.first_messages:
        out.print(f"  [bold]{m['role']}:[/] {escape(_preview(m['content']))}")
    return 0


PREVIEW_CHARS = 2000


def _preview(content: Any) -> str:
    """A message's content for the terminal: parts (text, images) as JSON, cut at
    `PREVIEW_CHARS` with a marker (a 10 MB dataset value is not printed whole)."""
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    if len(text) > PREVIEW_CHARS:
        text = f"{text[:PREVIEW_CHARS]}…[{len(text) - PREVIEW_CHARS:,} more chars]"
    return text


def cmd_plan(args: argparse.Namespace) -> int:
    with start_up(*PLAN_MODULES):
        loaded = _load(args.experiments, args.overrides)
    if args.count:
        return _count(loaded)
    return _plan(loaded, args.db)


def _count(loaded: LoadedConfig) -> int:
    """The plan's size and its first and last trials, without walking it."""
    from promptlab.experiment.prepare import prepare
    from promptlab.grid import Plan

    plan = Plan(prepare(loaded, check_api_keys=False).spec)
    out = out_console()
    out.print(f"{len(plan):,} trials")
    for label, index in (("first", 0), ("last", -1)):
        t = plan.trial(index)
        out.print(f"{label}: #{t.index} model={escape(t.model.alias)} prompt="
                  f"{escape(t.prompt.name)} row={escape(t.row.id)} repeat={t.repeat} "
                  f"params={escape(json.dumps(t.params, sort_keys=True))} key={t.key[:16]}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with start_up():
        from promptlab.experiment.launch import resume_run

    with open_store(args.db) as store:
        run_id = store.resolve_run_id(args.run_id)
        info = store.run(run_id)
        if info.status == "completed" and info.done - info.errors >= info.planned:
            err_console().print(f"run {run_id} is complete and every trial is ok; nothing to "
                                "resume")
            return 0
        experiments = Path(args.experiments) if args.experiments else Path.cwd() / "experiments"
        err = err_console()
        outcome = resume_run(store, run_id, overrides=args.overrides, experiments=experiments,
                             console=err, progress=False if args.no_progress else None)
        _summary(outcome, store, err)
        return _exit_code(outcome, store, [], err)
