"""`runs`, `show` and `export`: what the database holds."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promptlab.cli.common import add_db, open_store, out_console, parse_date

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="list runs in the database",
                          description="List runs, newest first.")
    runs.add_argument("--name", help="only runs whose name contains this")
    runs.add_argument("--status", help="only runs with this status (running, completed, ...)")
    runs.add_argument("--since", metavar="DATE", help="only runs started on or after (UTC "
                                                       "date or ISO time)")
    runs.add_argument("--until", metavar="DATE", help="only runs started before")
    runs.add_argument("--sweep", metavar="ID", help="only runs of this sweep")
    runs.add_argument("--limit", type=int, default=50)
    add_db(runs)
    runs.set_defaults(handler=cmd_runs)

    show = sub.add_parser("show", help="a run's provenance, config and counts",
                          description="Provenance (git, packages, host, times), the config "
                                      "and counts; --config prints the resolved YAML.")
    show.add_argument("run_id", nargs="?", default="latest")
    show.add_argument("--config", action="store_true",
                      help="print the resolved config as YAML (re-runnable with Hydra)")
    add_db(show)
    show.set_defaults(handler=cmd_show)

    export = sub.add_parser("export", help="export a run, one JSON line per trial",
                            description="One line per trial: the trial, its request and "
                                        "response (last attempt), result and scores.")
    export.add_argument("run_id", nargs="?", default="latest")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--output", "-o", help="file (default: stdout)")
    add_db(export)
    export.set_defaults(handler=cmd_export)


def cmd_runs(args: argparse.Namespace) -> int:
    with open_store(args.db, read_only=True) as store:
        runs = store.runs(name=args.name, status=args.status, limit=args.limit,
                          since=parse_date(args.since, "--since"),
                          until=parse_date(args.until, "--until"), sweep=args.sweep)
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
    out_console().print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args.db, read_only=True) as store:
        run_id = store.resolve_run_id(args.run_id)
        info = store.run(run_id)
        if args.config:
            from promptlab.config.stored import to_yaml

            sys.stdout.write("# promptlab run " + run_id + "; overrides: "
                             + " ".join(info.overrides) + "\n")
            sys.stdout.write(to_yaml(info.config))
            return 0
        statuses, attempts, cached = store.status_counts(run_id)
    m = info.manifest
    c = Console(highlight=False)
    lines = [
        f"run {info.id}: {info.name} ({info.status})",
        f"started {info.created_at:%Y-%m-%d %H:%M:%S} UTC, finished "
        f"{info.finished_at:%Y-%m-%d %H:%M:%S} UTC" if info.finished_at else
        f"started {info.created_at:%Y-%m-%d %H:%M:%S} UTC, not finished",
        f"trials: {info.planned} planned, {sum(statuses.values())} done "
        f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}); {cached} from cache; "
        f"{attempts} HTTP attempts",
        f"overrides: {' '.join(info.overrides) or '(none)'}",
        f"models: {', '.join(info.config.get('models', {}))}; prompts: "
        f"{', '.join(info.config.get('prompts', {}))}",
        f"git: {m.get('git_commit') or '-'}{' (dirty)' if m.get('git_dirty') else ''}",
        f"python {m.get('python')}, {m.get('platform')}, host {m.get('host')}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items()
                                 if v),
    ]
    if m.get("reproduces"):
        lines.append(f"reproduces run {m['reproduces']} ({m.get('mode')})")
    for line in lines:
        c.print(escape(line))
    return 0


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # a stream's raw events, or a body that was not JSON


def _export(store: Store, run_id: str, out: TextIO) -> int:
    scores = store.score_details(run_id)
    n = 0
    for row in store.export_rows(run_id):
        if row["request"] is not None:
            row["request"]["body"] = _json(row["request"]["body"])
        if row["response"] is not None:
            row["response"]["body"] = _json(row["response"]["body"])
        line = {"run_id": run_id, **row, "scores": scores.get(row["idx"], {})}
        out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def cmd_export(args: argparse.Namespace) -> int:
    with open_store(args.db, read_only=True) as store:
        run_id = store.resolve_run_id(args.run_id)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                n = _export(store, run_id, f)
            Console(stderr=True).print(f"{n:,} trials written to {escape(args.output)}")
        else:
            _export(store, run_id, sys.stdout)
    return 0
