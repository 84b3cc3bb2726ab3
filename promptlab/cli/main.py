"""The `promptlab` command line: the parser, assembled from one module per command family,
and the one place a `UserError` becomes one line on stderr and exit code 2, and a closed
pipe (`promptlab export RUN | head`) a quiet exit with status 141.

`run` composes the experiment with Hydra (config groups, overrides, ``--cfg job``);
everything else reads the database.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.markup import escape

from promptlab import __version__
from promptlab.cli import (
    batches,
    cache,
    compare,
    merge,
    mock,
    report,
    reproduce,
    run,
    runs,
    score,
    search,
    serve,
)
from promptlab.cli.common import RedactingConsole
from promptlab.cli.startup import command_gc
from promptlab.errors import UserError

__all__ = ["EXIT_CLOSED_PIPE", "build_parser", "entry", "main"]

EPILOG = "Run 'promptlab COMMAND --help' for a command's options."
COMMANDS = (run, runs, report, compare, score, reproduce, cache, mock, merge, serve, batches,
            search)
# 128 + SIGPIPE: the status a shell reports for any tool its reader stopped early (`cat
# big | head`), so `set -o pipefail` sees promptlab as it sees every other command.
EXIT_CLOSED_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptlab",
        description="Declarative prompt experiments: compose with Hydra, run against any LLM "
                    "API, record every call in SQL, compare in reports.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    with command_gc():  # the collector: frozen at exit, thawed for an in-process caller
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
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
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except SystemExit as exc:
        if isinstance(exc.__context__, BrokenPipeError):  # rich's Console handled it so
            return _closed_pipe()
        raise
    except UserError as exc:
        RedactingConsole(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        if "promptlab.store" in sys.modules:
            from promptlab.store import dispose_all

            dispose_all()


def _closed_pipe() -> int:
    """The reader of stdout has gone: point stdout at /dev/null, so that nothing left in
    its buffer fails again at exit (a traceback on stderr), and stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to flush
        pass
    return EXIT_CLOSED_PIPE


def entry() -> None:
    sys.exit(main())
