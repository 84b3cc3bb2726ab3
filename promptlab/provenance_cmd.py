"""`reproduce`, `show` and `export`: what a run was, and whether it still holds."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape
from sqlalchemy import func, select

from promptlab.store import open_engine, resolve_url
from promptlab.store.models import Attempt, Result, Score, TrialRow
from promptlab.store.queries import get_run, resolve_run_id

__all__ = ["cmd_reproduce", "cmd_show", "cmd_export"]


def cmd_reproduce(args: argparse.Namespace) -> int:
    from promptlab.reproduce import reproduce

    engine = open_engine(resolve_url(args.db))
    run_id = resolve_run_id(engine, args.run_id)
    drift = reproduce(engine, run_id, live=args.live)
    if args.format == "json":
        print(json.dumps({**asdict(drift), "drifted": drift.drifted}, indent=2, default=str))
    else:
        _print_drift(drift)
    return 1 if args.check and drift.drifted else 0


def _print_drift(d: Any) -> None:
    c = Console(highlight=False)
    c.print(f"[bold]reproduced[/] run {d.parent} as run {d.run_id} ({d.mode})")
    req = ("[green]all identical[/]" if not d.requests_changed else
           f"[red]{len(d.requests_changed)} changed[/] (trials "
           f"{', '.join(map(str, d.requests_changed[:10]))})")
    c.print(f"requests: {d.requests_identical}/{d.trials} identical in canonical form; {req}")
    c.print(f"outputs: {d.outputs_identical} identical, {len(d.outputs_changed)} changed")
    for ch in d.outputs_changed[:10]:
        c.print(f"  trial {ch['idx']} ({escape(ch['model'])}, {escape(ch['prompt'])}, row "
                f"{escape(ch['row_id'])}): {escape(repr((ch['before'] or '')[:60]))} -> "
                f"{escape(repr((ch['after'] or '')[:60]))}")
    for s in d.scores:
        c.print(f"score {escape(s['scorer'])}: {s['before']:.3f} -> {s['after']:.3f}, "
                f"difference {s['diff']:+.3f} [{s['lo']:+.3f}, {s['hi']:+.3f}]")
    for label, change in (("provider model", d.models), ("fingerprint", d.fingerprints)):
        if change:
            c.print(f"[yellow]{label} changed:[/] {escape(str(change['before']))} -> "
                    f"{escape(str(change['after']))}")
    for w in d.warnings:
        c.print(f"[yellow]warning:[/] {escape(w)}")
    c.print("[red]drift[/]" if d.drifted else "[green]no drift[/]")


def cmd_show(args: argparse.Namespace) -> int:
    engine = open_engine(resolve_url(args.db))
    run_id = resolve_run_id(engine, args.run_id)
    info = get_run(engine, run_id)
    if args.config:
        sys.stdout.write("# promptlab run " + run_id + "; overrides: "
                         + " ".join(info.overrides) + "\n")
        sys.stdout.write(OmegaConf.to_yaml(OmegaConf.create(info.config)))
        return 0
    m = info.manifest
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(Result.status, func.count()).where(
            Result.run_id == run_id).group_by(Result.status)).all())
        attempts = conn.scalar(select(func.count()).select_from(Attempt).where(
            Attempt.run_id == run_id))
        cached = conn.scalar(select(func.count()).select_from(Result).where(
            Result.run_id == run_id, Result.cache_hit.is_(True)))
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


def _export(engine: Any, run_id: str, out: TextIO) -> int:
    last = (select(Attempt.idx, func.max(Attempt.number).label("n"))
            .where(Attempt.run_id == run_id).group_by(Attempt.idx).subquery())
    stmt = (select(TrialRow, Result, Attempt.request_body, Attempt.response_body,
                   Attempt.url, Attempt.status_code)
            .join(Result, (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx))
            .join(last, last.c.idx == TrialRow.idx, isouter=True)
            .join(Attempt, (Attempt.run_id == TrialRow.run_id) & (Attempt.idx == TrialRow.idx)
                  & (Attempt.number == last.c.n), isouter=True)
            .where(TrialRow.run_id == run_id).order_by(TrialRow.idx))
    scores: dict[int, dict[str, Any]] = {}
    n = 0
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        for s in session.scalars(select(Score).where(Score.run_id == run_id)):
            scores.setdefault(s.idx, {})[s.scorer] = {
                "value": s.value, "passed": s.passed,
                "detail": json.loads(s.detail_json) if s.detail_json else None}
        for t, r, req, resp, url, code in session.execute(stmt):
            line = {
                "run_id": run_id, "idx": t.idx, "key": t.key, "model": t.model_alias,
                "provider": t.provider, "api_model": t.model, "prompt": t.prompt,
                "params": json.loads(t.params_json), "row_id": t.row_id,
                "row": json.loads(t.row_json), "repeat": t.repeat,
                "messages": json.loads(t.messages_json),
                "request": {"url": url, "body": _json(req)} if req is not None else None,
                "response": {"status": code, "body": _json(resp)} if resp is not None else None,
                "result": {k: getattr(r, k) for k in (
                    "status", "output", "finish_reason", "input_tokens", "output_tokens",
                    "latency_ms", "ttft_ms", "cost_usd", "attempts", "response_model",
                    "fingerprint", "error_kind", "error", "cache_hit", "cache_source")},
                "scores": scores.get(t.idx, {}),
            }
            out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            n += 1
    return n


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # a stream's raw events, or a body that was not JSON


def cmd_export(args: argparse.Namespace) -> int:
    engine = open_engine(resolve_url(args.db))
    run_id = resolve_run_id(engine, args.run_id)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            n = _export(engine, run_id, f)
        Console(stderr=True).print(f"{n:,} trials written to {escape(args.output)}")
    else:
        _export(engine, run_id, sys.stdout)
    return 0
