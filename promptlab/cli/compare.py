"""`promptlab compare`: the command around `promptlab.reports.compare`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.markup import escape
from rich.table import Table

from promptlab.canonical import finite
from promptlab.cli.common import RedactingConsole, add_db, open_store
from promptlab.errors import UserError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = sub.add_parser(
        "compare", help="paired comparison: is A better than B, and how sure are we?",
        description="Compare two groups of one run (--between model=a --and model=b) or two "
                    "runs (RUN RUN_B), paired on dataset row, prompt, repeat and the grid's "
                    "swept params (not the params each model fixes): win/tie/loss, "
                    "mean difference with a paired bootstrap 95% CI, exact McNemar (pass/fail) "
                    "or sign test, and the rows that flipped.")
    compare.add_argument("run_id", help="run id, prefix or 'latest'")
    compare.add_argument("run_b", nargs="?", help="a second run to compare against")
    compare.add_argument("--between", metavar="DIM=VALUE", help="side A, e.g. model=gpt-4o")
    compare.add_argument("--and", dest="and_", metavar="DIM=VALUE", help="side B")
    compare.add_argument("--scorer", help="only this scorer")
    compare.add_argument("--show", type=int, default=10, help="flipped rows to show")
    compare.add_argument("--format", choices=["table", "json"], default="table")
    add_db(compare)
    compare.set_defaults(handler=cmd_compare)

def cmd_compare(args: argparse.Namespace) -> int:
    from promptlab.reports.compare import compare, sides

    with open_store(args.db, read_only=True) as store:
        run_a = store.resolve_run_id(args.run_id)
        run_b = store.resolve_run_id(args.run_b) if args.run_b else None
        a, b, scorers = sides(store, run_a, run_b, args.between, args.and_)
    if args.scorer:
        if args.scorer not in scorers:
            raise UserError(f"--scorer {args.scorer}: not scored in this run; scorers here: "
                            f"{', '.join(scorers) or 'none (run promptlab score RUN)'}")
        scorers = [args.scorer]
    if not scorers:
        raise UserError("compare: the run has no scores; add scorers to the experiment and run "
                        "'promptlab score RUN'")
    if not a.rows or not b.rows:
        empty = a.label if not a.rows else b.label
        raise UserError(f"compare: no results match {empty}; check the value")
    results = [compare(a, b, s) for s in scorers]
    if results and all(c.pairs == 0 for c in results):
        raise UserError(f"compare: {results[0].mismatch or 'no item is on both sides'}; "
                        "compare groups that share dataset rows, prompts and repeats")
    if args.format == "json":
        out: list[dict[str, Any]] = []
        for c in results:
            d = {k: v for k, v in c.__dict__.items() if k != "flipped"}
            d["verdict"] = c.verdict
            d["flipped"] = [{k: v for k, v in f.items() if k != "key"} for f in c.flipped]
            out.append(d)
        print(json.dumps(finite({"a": a.label, "b": b.label, "comparisons": out}), indent=2,
                         default=list, allow_nan=False))
        return 0
    console = RedactingConsole(highlight=False, width=None if sys.stdout.isatty() else 150)
    console.print(f"[bold]A[/] = {escape(a.label)}    [bold]B[/] = {escape(b.label)}")
    unpaired = results[0].mismatch if results and results[0].pairs else ""
    if unpaired:
        console.print(f"[yellow]not every item has a partner:[/] {escape(unpaired)}")
    table = Table(title_justify="left")
    for col in ("scorer", "pairs", "A", "B", "A - B [95% CI]", "A wins / ties / B wins",
                "test", "p"):
        table.add_column(col, justify="left" if col in ("scorer", "test") else "right")
    for c in results:
        table.add_row(escape(c.scorer), str(c.pairs), f"{c.a_value:.3f}", f"{c.b_value:.3f}",
                      f"{c.diff:+.3f} [{c.diff_lo:+.3f}, {c.diff_hi:+.3f}]",
                      f"{c.wins} / {c.ties} / {c.losses}", c.test, f"{c.p_value:.3g}")
    console.print(table)
    for c in results:
        console.print(f"[bold]{escape(c.scorer)}:[/] {escape(c.verdict)}")
        if c.flipped and args.show:
            flips = Table(title=f"rows that flipped on {escape(c.scorer)} "
                                f"({len(c.flipped)}; first {min(args.show, len(c.flipped))})",
                          title_justify="left", show_lines=True)
            for col in ("item", "A", "A output", "B", "B output"):
                flips.add_column(col, overflow="fold")
            for f in c.flipped[:args.show]:
                flips.add_row(escape(f["item"]),
                              f"{f['a']:g}",
                              escape((f["a_output"] or "")[:300]), f"{f['b']:g}",
                              escape((f["b_output"] or "")[:300]))
            console.print(flips)
    return 0
