"""`merge`: per-shard (or any) promptlab SQLite files into one database."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from promptlab.cli.common import err_console, open_store
from promptlab.errors import UserError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "merge", help="merge promptlab databases (e.g. one per shard) into one",
        description="Copy runs, trials, attempts, results and scores (by key) and artifacts "
                    "(by sha256) of every input into the output database. A row already "
                    "there is skipped when equal and refused when it differs. Example: "
                    "'promptlab merge shard-0.db shard-1.db -o all.db'.")
    p.add_argument("inputs", nargs="+", help="databases to merge (paths or URLs)")
    p.add_argument("-o", "--output", required=True, help="the merged database (created)")
    p.set_defaults(handler=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    for path in args.inputs:
        if "://" not in path and not Path(path).is_file():
            raise UserError(f"{path}: no such database file")
    err = err_console()
    with open_store(args.output) as out:
        for path in args.inputs:
            with open_store(path, read_only=True) as source:
                counts = out.merge_from(source.engine, path)
            added = sum(counts.added.values())
            err.print(f"{escape(path)}: {counts.added.get('runs', 0)} runs, "
                      f"{counts.added.get('results', 0):,} results, {added:,} rows added "
                      f"({sum(counts.same.values()):,} already there)")
        err.print(f"merged into {escape(out.display_url)}")
    return 0
