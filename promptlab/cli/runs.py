"""`runs`, `show` and `export`: what the database holds."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.markup import escape
from rich.table import Table

from promptlab.canonical import finite
from promptlab.cli.common import (
    RedactingConsole,
    add_db,
    err_console,
    open_store,
    out_console,
    parse_date,
    visible,
)
from promptlab.errors import UserError
from promptlab.redaction import redact_overrides

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="list runs in the database",
                          description="List runs, newest first.")
    runs.add_argument("--name", help="only runs whose name contains this")
    runs.add_argument("--status", choices=["running", "completed", "stopped", "interrupted",
                                           "failed"], help="only runs with this status")
    runs.add_argument("--since", metavar="DATE", help="only runs started on or after (UTC "
                                                       "date or ISO time)")
    runs.add_argument("--until", metavar="DATE", help="only runs started before")
    runs.add_argument("--sweep", metavar="ID", help="only runs of this sweep")
    runs.add_argument("--search", metavar="ID", help="only the trials' runs of this search")
    runs.add_argument("--limit", type=int, default=50)
    add_db(runs)
    runs.set_defaults(handler=cmd_runs)

    show = sub.add_parser("show", help="a run's provenance, config and counts; or one trial",
                          description="Provenance (git, packages, host, times), the config "
                                      "and counts; --config prints the resolved YAML; --trial N "
                                      "prints one trial's whole record: every attempt's request "
                                      "and response, timings, errors, result, scores, cache.")
    show.add_argument("run_id", nargs="?", default="latest")
    what = show.add_mutually_exclusive_group()
    what.add_argument("--config", action="store_true",
                      help="print the resolved config as YAML (re-runnable with Hydra)")
    what.add_argument("--trial", metavar="N",
                      help="one trial, by index (0-based, as in export) or a prefix of its key")
    show.add_argument("--format", choices=["text", "json"], default="text",
                      help="with --trial: text (default) or json")
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
    member: dict[str, str] = {}  # run id -> "search #trial"
    with open_store(args.db, read_only=True) as store:
        runs = store.runs(name=args.name, status=args.status, limit=args.limit,
                          since=parse_date(args.since, "--since"),
                          until=parse_date(args.until, "--until"), sweep=args.sweep)
        if args.search:
            search_id = store.resolve_search_id(args.search)
            member = {t.run_id: f"{search_id} #{t.number}"
                      for t in store.search_trials(search_id)}
            runs = [r for r in store.runs(limit=100_000) if r.id in member][:args.limit]
    table = Table(title="runs", title_justify="left")
    for col in ("id", "name", "status", "started (UTC)", "duration", "results", "errors",
                "parent / sweep / search"):
        # Fold rather than cut: the id is the value people copy, whatever the width.
        table.add_column(col, justify="right" if col in ("results", "errors") else "left",
                         overflow="fold", no_wrap=col == "id",
                         min_width=22 if col == "id" else None)
    for r in runs:
        duration = (f"{(r.finished_at - r.created_at).total_seconds():.1f}s"
                    if r.finished_at else "-")
        table.add_row(r.id, escape(r.name), r.status, f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                      duration, f"{r.done:,}/{r.planned:,}", f"{r.errors:,}",
                      r.parent_run_id or r.sweep_id or member.get(r.id, ""))
    out_console().print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args.db, read_only=True) as store:
        run_id = store.resolve_run_id(args.run_id)
        if args.trial is not None:
            record = _trial_record(store, run_id, args.trial)
            if args.format == "json":
                sys.stdout.write(json.dumps(finite(record), indent=2, ensure_ascii=False,
                                            default=str, allow_nan=False) + "\n")
            else:
                sys.stdout.write(visible(_trial_text(record)))  # for people: --json keeps all
            return 0
        if args.format != "text":
            raise UserError("show --format json goes with --trial N")
        info = store.run(run_id)
        if args.config:
            from promptlab.config.stored import to_yaml

            sys.stdout.write(visible(redact_overrides(
                "# promptlab run " + run_id + "; overrides: " + " ".join(info.overrides))) + "\n")
            sys.stdout.write(to_yaml(info.config))
            return 0
        statuses, attempts, cached = store.status_counts(run_id)
    m = info.manifest
    c = RedactingConsole(highlight=False)
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


def _trial_record(store: Store, run_id: str, ref: str) -> dict[str, Any]:
    detail = store.trial_detail(run_id, ref)
    stored = store.trial_record(run_id, detail["idx"])
    fields = detail["fields"]
    trial = {"run_id": run_id, "idx": detail["idx"], "key": detail["key"],
             "cache_key": detail["cache_key"], "model": detail["model_alias"],
             "provider": fields["provider"], "api_model": fields["model"],
             "endpoint": fields["endpoint"], "prompt": detail["prompt"],
             "row_id": detail["row_id"], "repeat": fields["repeat"], "params": fields["params"],
             "row": stored["row"], "messages": fields["messages"]}
    for attempt in stored["attempts"]:
        attempt["request"]["body"] = _json(attempt["request"]["body"])
        attempt["response"]["body"] = _json(attempt["response"]["body"])
    return {"trial": trial, "attempts": stored["attempts"], "result": stored["result"],
            "scores": stored["scores"]}


def _block(value: Any, indent: str = "    ") -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False,
                                                            default=str)
    return "".join(f"{indent}{line}\n" for line in text.splitlines() or [""])


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _trial_text(record: dict[str, Any]) -> str:
    t, r = record["trial"], record["result"]
    lines = [f"trial {t['idx']} of run {t['run_id']}: model {t['model']} ({t['provider']} "
             f"{t['api_model']}), prompt {t['prompt']}, row {t['row_id']}, repeat "
             f"{t['repeat']}",
             f"key {t['key']}; cache key {t['cache_key']}",
             f"params: {json.dumps(t['params'], sort_keys=True, ensure_ascii=False)}",
             f"row: {json.dumps(t['row'], sort_keys=True, ensure_ascii=False)}",
             "messages:"]
    out = "\n".join(lines) + "\n"
    for m in t["messages"]:
        out += _block(f"[{m['role']}] {m['content']}", "  ")
    if r is None:
        out += "result: none yet (the run did not finish this trial)\n"
    else:
        kind = f" ({r['error_kind']})" if r["error_kind"] else ""
        plural = "" if r["attempts"] == 1 else "s"
        out += (f"result: {r['status']}{kind}; {r['attempts']} attempt{plural}; latency "
                f"{_num(r['latency_ms'], ' ms')}; ttft {_num(r['ttft_ms'], ' ms')}; tokens "
                f"{r['input_tokens'] if r['input_tokens'] is not None else '-'} in / "
                f"{r['output_tokens'] if r['output_tokens'] is not None else '-'} out; cost "
                + ("-" if r["cost_usd"] is None else f"${r['cost_usd']:.6f}")
                + f"; finish {r['finish_reason'] or '-'}; model {r['response_model'] or '-'}"
                + f"; finished {r['finished_at']} UTC\n")
        if r["error"]:
            out += f"  error: {r['error']}\n"
        if r["output"] is not None:
            out += "  output:\n" + _block(r["output"])
        out += _details_text(r)
        out += ("cache: " + (f"from the cache: {r['cache_source']}" if r["cache_hit"]
                             else (r["cache_source"] or "not from the cache")) + "\n")
    for a in record["attempts"]:
        req, resp = a["request"], a["response"]
        out += (f"attempt {a['number']} at {a['started_at']} UTC, "
                f"{_num(a['duration_ms'], ' ms')}: {req['url']} -> "
                f"{resp['status'] if resp['status'] is not None else 'no response'}\n")
        if a["error_kind"]:
            retry = (f"; retry after {a['retry_after_ms']:g} ms"
                     if a["retry_after_ms"] is not None else "")
            out += f"  error: {a['error_kind']}: {a['error'] or ''}{retry}\n"
        out += "  request headers:\n" + "".join(
            f"    {k}: {v}\n" for k, v in req["headers"].items())
        out += "  request body:\n" + _block(req["body"])
        if resp["body"] is not None:
            out += "  response body:\n" + _block(resp["body"])
    if record["scores"]:
        out += "scores:\n"
        for name, s in record["scores"].items():
            verdict = {True: " passed", False: " failed", None: ""}[s["passed"]]
            value = "-" if s["value"] is None else f"{s['value']:g}"
            detail = ("  " + json.dumps(s["detail"], ensure_ascii=False, default=str)
                      if s["detail"] else "")
            out += f"  {name}: {value}{verdict}{detail}\n"
    return out


def _details_text(r: dict[str, Any]) -> str:
    """Tool calls, parsed structured output, reasoning and token detail, where present."""
    out = ""
    for i, call in enumerate(_json(r.get("tool_calls_json")) or []):
        out += (f"  tool call {i + 1}: {call['name']}("
                f"{json.dumps(call['arguments'], ensure_ascii=False, sort_keys=True)})\n")
    if r.get("parsed_json") is not None:
        out += "  parsed JSON:\n" + _block(_json(r["parsed_json"]))
    if r.get("reasoning"):
        out += "  reasoning:\n" + _block(r["reasoning"])
    counts = [f"{r[k]} {label}" for k, label in (
        ("reasoning_tokens", "reasoning"), ("cached_input_tokens", "cached input"),
        ("cache_write_tokens", "cache write")) if r.get(k) is not None]
    return out + (f"  tokens: {', '.join(counts)}\n" if counts else "")


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
        out.write(json.dumps(finite(line), ensure_ascii=False, default=str, allow_nan=False)
                  + "\n")
        n += 1
    return n


def cmd_export(args: argparse.Namespace) -> int:
    with open_store(args.db, read_only=True) as store:
        run_id = store.resolve_run_id(args.run_id)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                n = _export(store, run_id, f)
            err_console().print(f"{n:,} trials written to {escape(args.output)}")
        else:
            _export(store, run_id, sys.stdout)
    return 0
