"""What every command shares: consoles, the --db option, opening the store."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from promptlab.cli.startup import start_up
from promptlab.errors import UserError
from promptlab.redaction import redact_overrides

__all__ = ["RedactingConsole", "add_db", "err_console", "out_console", "parse_date",
           "open_store", "print_scorer_failures", "visible"]

if TYPE_CHECKING:
    from promptlab.store import Store


# Control characters but tab and newline: C0, DEL and C1. A dataset value, a model's output
# or a server's error text could otherwise move the cursor, recolour or clear the terminal.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """`text` with its control characters (but tab and newline) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


class RedactingConsole(Console):
    """A console whose text never shows a secret given as an override (a sweep's job lines
    and a run's overrides echo the command line, where a header or key was typed), nor
    acts on a control character: every string it renders, table cells included, shows
    them as ``\\xNN`` (rich passes ESC and NUL to the terminal as they are)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(redact_overrides(o) if isinstance(o, str) else o for o in objects),
                      **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(visible(text), **kwargs)


def err_console() -> Console:
    return RedactingConsole(stderr=True, highlight=False,
                            width=None if sys.stderr.isatty() else 160)


def out_console() -> Console:
    return RedactingConsole(highlight=False, width=None if sys.stdout.isatty() else 160)


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database file or SQLAlchemy URL (default: $PROMPTLAB_DB, the "
                                "config's db, or ./results.db)")


def open_store(db: str | None, configured: str | None = None, *,
               read_only: bool = False) -> Store:
    """The database of --db (or its defaults); commands that only read pass read_only, so
    that a checked-in or shared database is never modified. Opened in a start-up block
    (cli/startup.py): SQLAlchemy's modules, the engine and, for a new database, Alembic and
    its migrations are built with the collector paused, and frozen."""
    with start_up():
        from promptlab.store import Store

        return Store.open(db, configured=configured, read_only=read_only)


def parse_date(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: not a date; write 2026-11-25 or "
                        "2026-11-25T14:00") from None
    return when.replace(tzinfo=None)


def print_scorer_failures(err: Console, store: Store, run_id: str) -> None:
    """One line per scorer that failed on some results (the report shows those as no
    value), with its commonest error and where to see each one."""
    for scorer, failed, scored, error in store.scorer_failures(run_id):
        err.print(f"[red]scorer {escape(scorer)} failed on {failed:,} of {scored:,} results:[/] "
                  f"{escape(error)}; see promptlab show {run_id} --trial N", soft_wrap=True)
