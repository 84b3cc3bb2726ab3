"""`score`: re-score a run's stored outputs with the current scorers (no model calls)."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptlab.cli.common import (
    add_db,
    err_console,
    open_store,
    out_console,
    print_scorer_failures,
)
from promptlab.errors import UserError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    score = sub.add_parser(
        "score", help="re-score a run's stored outputs with the current scorers (no model "
                      "calls, except an LLM judge's own)",
        description="Apply the scorers of the experiment on disk (or, without one, those "
                    "stored with the run) to every ok result of the run.")
    score.add_argument("run_id", nargs="?", default="latest")
    add_db(score)
    score.add_argument("--experiments", metavar="DIR")
    score.set_defaults(handler=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    from promptlab.config.loading import load
    from promptlab.experiment.prepare import resolve_judges
    from promptlab.experiment.rebuild import from_database
    from promptlab.reports.aggregate import aggregate_runs
    from promptlab.reports.render import rich_table
    from promptlab.scoring import build_scorers, score_run

    with open_store(args.db) as store:
        run_id = store.resolve_run_id(args.run_id)
        info, prepared = from_database(store, run_id, check_api_keys=False)
        experiments = (Path(args.experiments) if args.experiments
                       else Path.cwd() / "experiments").resolve()
        if (experiments / "config.yaml").is_file():
            loaded = load(experiments, list(info.overrides))
            where = str(experiments / "config.yaml")
        else:
            loaded, where = prepared.loaded, f"run {run_id}"
        scorers = build_scorers(loaded.config, where)
        if not scorers:
            raise UserError(f"{where}: no scorers configured; add a 'scorers:' section")
        scorers = resolve_judges(scorers, loaded, prepared.renderer)
        n = score_run(store, run_id, scorers, prepared.spec, prepared.renderer)
        err = err_console()
        err.print(f"{n:,} scores written for run {run_id}")
        print_scorer_failures(err, store, run_id)
        groups = aggregate_runs(store, [run_id], ["model", "prompt"])
        out_console().print(rich_table(groups, ["model", "prompt"], f"run {run_id}",
                                       store.scorer_names(run_id)))
    return 0
