"""`cache why`: why a trial was (or was not) served from the cache."""

from __future__ import annotations

import argparse

from promptlab.cli.common import add_db, open_store, visible

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = sub.add_parser("cache", help="inspect the cache",
                           description="The database is the cache. 'why' explains a trial's "
                                       "cache hit or miss.")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    why = cache_sub.add_parser("why", help="why a trial missed: the fingerprint fields that "
                                           "differ from the nearest stored request")
    why.add_argument("run_id")
    why.add_argument("trial", help="trial index (0-based) or key prefix")
    add_db(why)
    why.set_defaults(handler=cmd_cache_why)


def cmd_cache_why(args: argparse.Namespace) -> int:
    from promptlab.cache import explain

    with open_store(args.db, read_only=True) as store:
        run_id = store.resolve_run_id(args.run_id)
        for line in explain(store, run_id, args.trial):
            print(visible(line))
    return 0
