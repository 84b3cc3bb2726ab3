"""`reproduce`: rebuild a run from the database alone and report what drifted."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from rich.markup import escape

from promptlab.cli.common import RedactingConsole, add_db, open_store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser(
        "reproduce", help="rebuild a run from the database alone and report what drifted",
        description="Works in an empty directory with only the database: the stored config, "
                    "templates and dataset rebuild the plan. Replay (default) checks every "
                    "request against the stored one and sends nothing; --live sends them "
                    "again and compares outputs, scores, provider models and fingerprints.")
    rep.add_argument("run_id")
    rep.add_argument("--live", action="store_true", help="call the APIs again")
    rep.add_argument("--check", action="store_true", help="exit 1 when anything drifted")
    rep.add_argument("--format", choices=["text", "json"], default="text")
    add_db(rep)
    rep.set_defaults(handler=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from promptlab.experiment.reproduce import reproduce

    with open_store(args.db) as store:
        drift = reproduce(store, store.resolve_run_id(args.run_id), live=args.live)
    if args.format == "json":
        print(json.dumps({**asdict(drift), "drifted": drift.drifted}, indent=2, default=str))
    else:
        _print_drift(drift)
    return 1 if args.check and drift.drifted else 0


def _print_drift(d: Any) -> None:
    c = RedactingConsole(highlight=False)
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
