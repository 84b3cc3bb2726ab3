"""`batches` and `cancel`: a run's provider batches, and cancelling them on the server."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from promptlab.cli.common import add_db, err_console, open_store, out_console

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batches = sub.add_parser("batches", help="list the provider batches of runs (run.batch)",
                             description="The batches sent to providers' batch APIs: ids, "
                                         "status and progress, newest run first.")
    batches.add_argument("run_id", nargs="?", help="only this run (an id, prefix or latest)")
    add_db(batches)
    batches.set_defaults(handler=cmd_batches)

    cancel = sub.add_parser("cancel", help="cancel a run's live batches on the server",
                            description="Ask the provider to cancel every batch of the run "
                                        "that has not ended; results already made are read by "
                                        "the running process or by 'promptlab resume'.")
    cancel.add_argument("run_id")
    add_db(cancel)
    cancel.set_defaults(handler=cmd_cancel)


def cmd_batches(args: argparse.Namespace) -> int:
    with open_store(args.db, read_only=True) as store:
        run_id = store.resolve_run_id(args.run_id) if args.run_id else None
        rows = store.batches(run_id)
    table = Table(title="batches", title_justify="left")
    for col in ("run", "#", "model", "api", "round", "batch id", "status", "done", "failed",
                "read"):
        table.add_column(col, justify="right" if col in ("#", "round", "done", "failed")
                         else "left")
    for b in rows:
        table.add_row(b.run_id, str(b.number), escape(b.model_alias), escape(b.api),
                      str(b.round), escape(b.batch_id or "-"), escape(b.status),
                      f"{b.completed_count:,}/{b.request_count:,}", f"{b.failed_count:,}",
                      "yes" if b.ingested_at else "no")
    out_console().print(table)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    import asyncio

    from promptlab.batch import cancel_batches
    from promptlab.experiment.rebuild import from_database

    with open_store(args.db) as store:
        run_id = store.resolve_run_id(args.run_id)
        _, prepared = from_database(store, run_id)
        ids = asyncio.run(cancel_batches(store, prepared.spec, prepared.renderer, run_id))
    err = err_console()
    if not ids:
        err.print(f"run {run_id} has no batch in progress; nothing to cancel")
    for batch_id in ids:
        err.print(f"cancelling {escape(batch_id)}")
    return 0
