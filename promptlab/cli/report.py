"""`report`: a run's (or a sweep's) groups: calls, errors, latency, tokens, cost, scores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from promptlab.cli.common import add_db, err_console, open_store, out_console
from promptlab.cli.run import add_fail_under
from promptlab.errors import UserError
from promptlab.gate import check_names, evaluate, parse_gates

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report", help="compare a run's groups: calls, errors, latency, tokens, cost",
        description="Aggregate a run's results grouped by grid dimensions.")
    report.add_argument("run_id", nargs="?", default="latest",
                        help="run id, unique prefix, or 'latest' (default)")
    report.add_argument("--by", default="model,prompt",
                        help="comma-separated dimensions: model, prompt, row, repeat or any "
                             "parameter name such as temperature (default: model,prompt)")
    report.add_argument("--format", default="table",
                        choices=["table", "markdown", "csv", "json", "html"],
                        help="html writes a self-contained page (charts, outputs beside "
                             "prompts); give -o FILE")
    report.add_argument("--output", "-o", help="write to this file instead of stdout")
    report.add_argument("--sweep", metavar="ID",
                        help="report every run of a sweep (promptlab run -m ...) as one table")
    report.add_argument("--search", metavar="ID",
                        help="a search's trials (params, objective, run, state), the best "
                             "point with its 95%% interval, or the Pareto front "
                             "(promptlab search ...); id, prefix or 'latest'")
    add_db(report)
    add_fail_under(report)
    report.set_defaults(handler=cmd_report)


def _dims(text: str) -> list[str]:
    dims = [d.strip() for d in text.split(",") if d.strip()]
    if not dims:
        raise UserError("--by: give at least one dimension, e.g. --by model,prompt")
    return dims


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _declared_scorers(store: Store, run_ids: list[str], configs: list[dict[str, Any]]
                      ) -> set[str]:
    """Scorers with scores in these runs, and those their configs declare."""
    names = {s for r in run_ids for s in store.scorer_names(r)}
    for config in configs:
        names.update(config.get("scorers") or {})
        for prompt in (config.get("prompts") or {}).values():
            names.update(prompt.get("scorers") or {})
    return names


def cmd_report(args: argparse.Namespace) -> int:
    """The report; with --fail-under, exit 1 and one line per failing gate."""
    gates = parse_gates(args.fail_under)
    if not gates:
        return _report(args)
    with open_store(args.db) as store:  # unknown scorers are refused before the report
        if args.sweep:
            runs = store.runs(sweep=args.sweep, limit=100_000)
            run_ids, where, configs = [r.id for r in runs], f"sweep {args.sweep}", [
                r.config for r in runs]
        else:
            info = store.run(store.resolve_run_id(args.run_id))
            run_ids, where, configs = [info.id], f"run {info.id}", [info.config]
            args.run_id = info.id  # the report and the gates read the same run
        if run_ids:  # (an empty sweep is the report's own error)
            check_names(gates, _declared_scorers(store, run_ids, configs), where)
    code = _report(args)
    with open_store(args.db) as store:
        lines = evaluate(store, run_ids, gates)
    err = err_console()
    for line in lines:
        err.print(f"[red]{escape(line)}[/]")
    return 1 if lines else code


def _report(args: argparse.Namespace) -> int:
    from promptlab.reports.aggregate import aggregate_runs
    from promptlab.reports.render import render_text, rich_table

    with open_store(args.db, read_only=True) as store:
        if args.search:
            return _report_search(args, store)
        if args.sweep:
            return _report_sweep(args, store)
        run_id = store.resolve_run_id(args.run_id)
        info = store.run(run_id)
        dims = _dims(args.by)
        known = {"model", "prompt", "row", "repeat"}
        params = set(info.config.get("grid", {}).get("params", {}))
        for m in info.config.get("models", {}).values():
            params.update(m.get("params", {}))
        unknown = [d for d in dims if d not in known | params]
        if unknown:
            raise UserError(f"--by: '{unknown[0]}' is not a dimension of run {run_id}; use one "
                            f"of: {', '.join(sorted(known | params))}")
        groups = aggregate_runs(store, [run_id], dims)
        scorers = store.scorer_names(run_id)
        meta = {"run_id": run_id, "name": info.name, "status": info.status}
        if args.format == "table" and not args.output:
            out_console().print(rich_table(groups, dims, f"run {run_id} ({escape(info.name)}, "
                                                         f"{info.status})", scorers))
            return 0
        if args.format == "html":
            from promptlab.reports.html import render_html

            text = render_html(store, info, groups, dims, scorers)
        else:
            fmt = "markdown" if args.format == "table" else args.format
            text = render_text(groups, dims, fmt, meta, scorers)
    _write(text, args.output)
    return 0


def _report_search(args: argparse.Namespace, store: Store) -> int:
    from promptlab.reports.search import render_search, search_report, search_table

    if args.format == "html":
        raise UserError("--search: html is not available for a search; use --format "
                        "table, markdown, csv or json")
    report = search_report(store, store.resolve_search_id(args.search))
    if args.format == "table" and not args.output:
        table, lines = search_table(report)
        out = out_console()
        out.print(table)
        for line in lines:
            out.print(line)
        return 0
    _write(render_search(report, "markdown" if args.format == "table" else args.format),
           args.output)
    return 0


def _report_sweep(args: argparse.Namespace, store: Store) -> int:
    from promptlab.reports.aggregate import aggregate_runs
    from promptlab.reports.render import render_text, rich_table

    runs = store.runs(sweep=args.sweep, limit=100_000)
    if not runs:
        raise UserError(f"--sweep {args.sweep}: no runs in this sweep; list sweeps with "
                        "'promptlab runs'")
    dims = _dims(args.by)
    groups = aggregate_runs(store, [r.id for r in runs], dims)
    scorers = sorted({s for r in runs for s in store.scorer_names(r.id)})
    meta = {"run_id": args.sweep, "name": f"sweep of {len(runs)} runs", "status": "sweep"}
    if args.format == "table" and not args.output:
        out_console().print(rich_table(groups, dims, f"sweep {escape(args.sweep)} "
                                                     f"({len(runs)} runs)", scorers))
        return 0
    if args.format == "html":
        from promptlab.reports.html import render_sweep_html

        text = render_sweep_html(store, args.sweep, runs, groups, dims, scorers)
    else:
        text = render_text(groups, dims, "markdown" if args.format == "table" else args.format,
                           meta, scorers)
    _write(text, args.output)
    return 0
