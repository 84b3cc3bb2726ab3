"""The command line: `main` assembles one subparser per command family (cli/*.py)."""

from promptlab.cli.main import build_parser, entry, main

__all__ = ["build_parser", "entry", "main"]
