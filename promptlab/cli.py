"""The `promptlab` command line.

`run` composes the experiment with Hydra (config groups, overrides, ``--cfg job``);
everything else reads the database. A user error prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from promptlab.errors import UserError

__all__ = ["main", "build_parser"]

EPILOG = "Run 'promptlab COMMAND --help' for a command's options."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptlab",
        description="Declarative prompt experiments: compose with Hydra, run against any LLM "
                    "API, record every call in SQL, compare in reports.",
        epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run an experiment (Hydra overrides as arguments)",
        description="Compose experiments/config.yaml with Hydra overrides, render every prompt, "
                    "then send every call and record it. Examples: 'promptlab run "
                    "+experiment=example', \"promptlab run 'models=[mock-small]' "
                    "run.concurrency=64\".")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. grid.repeats=3")
    run.add_argument("--cfg", choices=["job", "all"], help="print the composed config and exit")
    run.add_argument("-m", "--multirun", action="store_true",
                     help="sweep: one run per combination of comma-separated override values "
                          "(model=a,b run.concurrency=8,16), sharing a sweep id")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (calls, cached, tokens, cost) and send nothing")
    _db_args(run)
    run.add_argument("--experiments", metavar="DIR",
                     help="the experiments directory (default: ./experiments)")

    plan = sub.add_parser(
        "plan", help="dry run: calls, cached calls, estimated tokens and cost; sends nothing",
        description="Compose and render everything like 'run', then print the number of calls, "
                    "how many the cache would answer, estimated tokens and cost (from the "
                    "models' price tables) and the first rendered prompt.")
    plan.add_argument("overrides", nargs="*", help="Hydra overrides, as for run")
    plan.add_argument("--count", action="store_true",
                      help="only the number of trials and the first and last (no estimate)")
    _db_args(plan)
    plan.add_argument("--experiments", metavar="DIR")

    resume = sub.add_parser(
        "resume", help="finish an interrupted or stopped run without repeating a call",
        description="Rebuild a run from the database and send only the trials without an ok "
                    "result. Refuses if the experiment on disk no longer matches. run.* "
                    "settings may change, e.g. run.max_cost_usd=5.")
    resume.add_argument("run_id", help="run id, unique prefix, or 'latest'")
    resume.add_argument("overrides", nargs="*", help="run.* overrides, e.g. run.concurrency=8")
    resume.add_argument("--no-progress", action="store_true")
    _db_args(resume)
    resume.add_argument("--experiments", metavar="DIR",
                        help="compare against this experiments directory (default: "
                             "./experiments when present)")

    cache = sub.add_parser("cache", help="inspect the cache",
                           description="The database is the cache. 'why' explains a trial's "
                                       "cache hit or miss.")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    why = cache_sub.add_parser("why", help="why a trial missed: the fingerprint fields that "
                                           "differ from the nearest stored request")
    why.add_argument("run_id")
    why.add_argument("trial", help="trial index (0-based) or key prefix")
    _db_args(why)

    runs = sub.add_parser("runs", help="list runs in the database",
                          description="List runs, newest first.")
    runs.add_argument("--name", help="only runs whose name contains this")
    runs.add_argument("--status", help="only runs with this status (running, completed, ...)")
    runs.add_argument("--since", metavar="DATE", help="only runs started on or after (UTC "
                                                       "date or ISO time)")
    runs.add_argument("--until", metavar="DATE", help="only runs started before")
    runs.add_argument("--sweep", metavar="ID", help="only runs of this sweep")
    runs.add_argument("--limit", type=int, default=50)
    _db_args(runs)

    report = sub.add_parser(
        "report", help="compare a run's groups: calls, errors, latency, tokens, cost",
        description="Aggregate a run's results grouped by grid dimensions.")
    report.add_argument("run_id", nargs="?", default="latest",
                        help="run id, unique prefix, or 'latest' (default)")
    report.add_argument("--by", default="model,prompt",
                        help="comma-separated dimensions: model, prompt, row, repeat or any "
                             "parameter name such as temperature (default: model,prompt)")
    report.add_argument("--format", default="table",
                        choices=["table", "markdown", "csv", "json", "html"],
                        help="html writes a self-contained page (charts, outputs beside "
                             "prompts); give -o FILE")
    report.add_argument("--output", "-o", help="write to this file instead of stdout")
    report.add_argument("--sweep", metavar="ID",
                        help="report every run of a sweep (promptlab run -m ...) as one table")
    _db_args(report)

    score = sub.add_parser(
        "score", help="re-score a run's stored outputs with the current scorers (no model "
                      "calls, except an LLM judge's own)",
        description="Apply the scorers of the experiment on disk (or, without one, those "
                    "stored with the run) to every ok result of the run.")
    score.add_argument("run_id", nargs="?", default="latest")
    _db_args(score)
    score.add_argument("--experiments", metavar="DIR")

    compare = sub.add_parser(
        "compare", help="paired comparison: is A better than B, and how sure are we?",
        description="Compare two groups of one run (--between model=a --and model=b) or two "
                    "runs (RUN RUN_B), matched on dataset row, prompt and repeat: win/tie/loss, "
                    "mean difference with a paired bootstrap 95%% CI, exact McNemar (pass/fail) "
                    "or sign test, and the rows that flipped.")
    compare.add_argument("run_id", help="run id, prefix or 'latest'")
    compare.add_argument("run_b", nargs="?", help="a second run to compare against")
    compare.add_argument("--between", metavar="DIM=VALUE", help="side A, e.g. model=gpt-4o")
    compare.add_argument("--and", dest="and_", metavar="DIM=VALUE", help="side B")
    compare.add_argument("--scorer", help="only this scorer")
    compare.add_argument("--show", type=int, default=10, help="flipped rows to show")
    compare.add_argument("--format", choices=["table", "json"], default="table")
    _db_args(compare)

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
    _db_args(rep)

    show = sub.add_parser("show", help="a run's provenance, config and counts",
                          description="Provenance (git, packages, host, times), the config "
                                      "and counts; --config prints the resolved YAML.")
    show.add_argument("run_id", nargs="?", default="latest")
    show.add_argument("--config", action="store_true",
                      help="print the resolved config as YAML (re-runnable with Hydra)")
    _db_args(show)

    export = sub.add_parser("export", help="export a run, one JSON line per trial",
                            description="One line per trial: the trial, its request and "
                                        "response (last attempt), result and scores.")
    export.add_argument("run_id", nargs="?", default="latest")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--output", "-o", help="file (default: stdout)")
    _db_args(export)

    mock = sub.add_parser("mock-server", help="serve the mock LLM API on 127.0.0.1",
                          description="A real HTTP server speaking the OpenAI Chat Completions, "
                                      "/v1/models and Anthropic Messages wire formats.")
    mock.add_argument("--port", type=int, default=8089)
    mock.add_argument("--latency-ms", type=float, default=0.0)
    for kind in ("429", "500", "529", "slow", "drop", "malformed"):
        mock.add_argument(f"--fault-{kind}", type=float, default=0.0, metavar="RATE",
                          help=f"fraction of requests answered with fault '{kind}'")
    mock.add_argument("--slow-ms", type=float, default=5000.0)
    mock.add_argument("--seed", type=int, default=0)
    mock.add_argument("--api-key", help="require this key (Bearer or x-api-key)")
    mock.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    return parser


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database file or SQLAlchemy URL (default: $PROMPTLAB_DB, the "
                                "config's db, or ./results.db)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before or after options: `run --db x a=1 --no-progress b=2`.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "overrides", None) is None or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if args.command is None:
        parser.print_help()
        return 0
    from promptlab import commands

    handler = getattr(commands, "cmd_" + args.command.replace("-", "_"))
    try:
        code: int = handler(args)
        return code
    except UserError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        from promptlab.store.database import dispose_all

        dispose_all()


def entry() -> None:
    sys.exit(main())
