"""`search`: maximise or minimise an objective over a parameter space with Optuna.

Exit codes: 0 every trial completed with a value; 1 some trial failed; 2 a user error
(main); 130 interrupted (main).
"""

from __future__ import annotations

import argparse

from promptlab.cli.common import add_db, err_console, open_store
from promptlab.errors import UserError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    search = sub.add_parser(
        "search", help="search a parameter space with Optuna (each trial a run)",
        description="Compose the experiment (Hydra overrides as for run), read its 'search:' "
                    "block (params in Hydra's sweep syntax: interval(a,b), int(interval(a,b)), "
                    "tag(log, interval(a,b)), choice(...), range(...); objective: a scorer, "
                    "cost_usd or latency_p50_ms, or two of them for a Pareto front; direction; "
                    "trials; parallel; seed) and run one promptlab run per Optuna trial. The "
                    "study lives beside the results database. Example: 'promptlab search "
                    "+experiment=search-temperature'; then 'promptlab report --search ID'.")
    search.add_argument("overrides", nargs="*",
                        help="Hydra overrides, e.g. search.trials=30 hydra/launcher=joblib")
    search.add_argument("--resume", metavar="SEARCH_ID",
                        help="continue this search (after a crash or Ctrl-C): finished trials "
                             "are kept, a trial killed mid-run is finished, then the rest run; "
                             "its config is the one it started with (only hydra/... overrides "
                             "may be given)")
    add_db(search)
    search.add_argument("--experiments", metavar="DIR",
                        help="the experiments directory (default: ./experiments)")
    search.set_defaults(handler=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("promptlab search needs Optuna: pip install 'promptlab[search]'"
                        ) from None
    from promptlab.config.loading import find_experiments_dir
    from promptlab.experiment.search import plan_search, run_search

    config_dir = find_experiments_dir(args.experiments)
    err = err_console()
    resume = None
    overrides = list(args.overrides)
    if args.resume:
        from promptlab.config.overrides import hydra_overrides, task_overrides

        fixed = task_overrides(overrides)  # the launcher may change; the experiment not
        if fixed:
            raise UserError(f"search --resume {args.resume}: {' '.join(fixed)}: a search's "
                            "config is fixed when it starts, so --resume takes only hydra/... "
                            "overrides; drop the others, or start a new search with them")
        with open_store(args.db, read_only=True) as store:
            resume = store.resolve_search_id(args.resume)
            info = store.search(resume)
        overrides = [*info.overrides, *hydra_overrides(overrides)]
    plan = plan_search(config_dir, overrides)
    with open_store(args.db, plan.loaded.config.get("db")) as store:
        search_id, _ = run_search(plan, store, resume=resume, console=err)
        trials = store.search_trials(search_id)
    failed = sum(t.state != "complete" for t in trials)
    err.print(f"search {search_id}: {len(trials)} trials, {failed} failed")
    err.print(f"next: promptlab report --search {search_id}"
              + (f" --db {args.db}" if args.db else ""))
    return 1 if failed else 0
