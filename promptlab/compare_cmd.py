"""`promptlab compare`: the command around `promptlab.reports.compare`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promptlab.errors import UserError
from promptlab.reports.compare import Side, compare, parse_selector, side
from promptlab.store import open_engine, resolve_url
from promptlab.store.queries import ResultRow, iter_results, resolve_run_id, scorer_names

__all__ = ["cmd_compare"]

BASE_DIMS = ["row", "prompt", "repeat"]


def _dims(rows: list[ResultRow]) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {"model": set()}
    for r in rows:
        values["model"].add(r.model_alias)
        for k, v in r.params.items():
            values.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    return values


def _selector(text: str | None, flag: str) -> tuple[str, str] | None:
    if text is None:
        return None
    try:
        return parse_selector(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: write DIMENSION=VALUE, e.g. model=gpt-4o-mini or "
                        "temperature=0.7") from None


def _sides(args: argparse.Namespace) -> tuple[Side, Side, list[str]]:
    engine = open_engine(resolve_url(args.db))
    run_a = resolve_run_id(engine, args.run_id)
    sel_a, sel_b = _selector(args.between, "--between"), _selector(args.and_, "--and")
    rows_a = list(iter_results(engine, run_a))
    scorers = scorer_names(engine, run_a)
    if args.run_b:
        run_b = resolve_run_id(engine, args.run_b)
        rows_b = list(iter_results(engine, run_b))
        da, db = _dims(rows_a), _dims(rows_b)
        shared = [d for d in da if d in db and da[d] == db[d] and len(da[d]) > 1
                  and d not in {s[0] for s in (sel_a, sel_b) if s}]
        key = BASE_DIMS + shared
        label_a = f"run {run_a}" + (f" {args.between}" if sel_a else "")
        label_b = f"run {run_b}" + (f" {args.and_}" if sel_b else "")
        scorers = sorted(set(scorers) & set(scorer_names(engine, run_b)))
        return side(rows_a, label_a, key, sel_a), side(rows_b, label_b, key, sel_b), scorers
    if sel_a is None or sel_b is None:
        raise UserError("compare: give a second run, or two groups of this run with "
                        "--between DIM=VALUE --and DIM=VALUE")
    if sel_a[0] != sel_b[0]:
        raise UserError(f"compare: --between and --and must vary one dimension ({sel_a[0]} vs "
                        f"{sel_b[0]}); e.g. --between model=a --and model=b")
    dims = _dims(rows_a)
    if sel_a[0] not in dims and sel_a[0] not in ("prompt", "row", "repeat"):
        raise UserError(f"compare: '{sel_a[0]}' is not a dimension of run {run_a}; use "
                        f"model, prompt or one of: {', '.join(sorted(set(dims) - {'model'}))}")
    key = [d for d in ["model", "prompt", "row", "repeat", *sorted(set(dims) - {"model"})]
           if d != sel_a[0]]
    return (side(rows_a, args.between, key, sel_a), side(rows_a, args.and_, key, sel_b),
            scorers)


def cmd_compare(args: argparse.Namespace) -> int:
    a, b, scorers = _sides(args)
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
    if args.format == "json":
        out: list[dict[str, Any]] = []
        for c in results:
            d = {k: v for k, v in c.__dict__.items() if k != "flipped"}
            d["verdict"] = c.verdict
            d["flipped"] = [{k: v for k, v in f.items() if k != "key"} for f in c.flipped]
            out.append(d)
        print(json.dumps({"a": a.label, "b": b.label, "comparisons": out}, indent=2,
                         default=list))
        return 0
    import sys

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    console.print(f"[bold]A[/] = {escape(a.label)}    [bold]B[/] = {escape(b.label)}")
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
