"""Inserting results over the error results a resume sends again.

A resume no longer deletes a run's error and skipped results before it sends their trials
again (a resume that fails would lose them): the new result replaces the old one when it is
written, in the same statement, and an ok result is never replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.dialects import postgresql, sqlite

from promptlab.store.tables import Result

__all__ = ["insert_results"]

_KEY = ("run_id", "idx")


def insert_results(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert these result rows; one for a trial whose stored result is not ok replaces it."""
    if not rows:
        return
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql"):
        conn.execute(insert(Result), list(rows))
        return
    stmt = (sqlite.insert(Result) if name == "sqlite" else postgresql.insert(Result))
    columns = {k for row in rows for k in row} - set(_KEY)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={c: stmt.excluded[c] for c in sorted(columns)},
        where=Result.status != "ok")
    conn.execute(stmt, list(rows))
