"""Inserting results over the error results a resume sends again.

A resume no longer deletes a run's error and skipped results before it sends their trials
again (a resume that fails would lose them): the new result replaces the old one when it is
written, in the same statement, and an ok result is never replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, literal, null, select, true
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert

from promptlab.store.bulk import executemany
from promptlab.store.tables import RESULT_DETAILS, Result

__all__ = ["COPIED", "copy_results", "insert_results"]

_KEY = ("run_id", "idx")


def _upsert(dialect: str) -> Any:
    """The dialect's INSERT with ON CONFLICT (PostgreSQL's imported only when used)."""
    if dialect == "sqlite":
        return SQLiteInsert(Result)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(Result)


def _replacing(conn: Connection, columns: Sequence[str], query: Any = None) -> Any:
    """INSERT INTO results (`columns`, from `query` when given) where a row for a trial
    whose stored result is not ok replaces it, and an ok one is kept (SQLite and
    PostgreSQL; elsewhere a plain INSERT)."""
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql"):
        return insert(Result) if query is None else insert(Result).from_select(columns, query)
    stmt = _upsert(name)
    if query is not None:
        stmt = stmt.from_select(columns, query)
    return stmt.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={c: stmt.excluded[c] for c in columns if c not in _KEY},
        where=Result.status != "ok")


def insert_results(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert these result rows; one for a trial whose stored result is not ok replaces it."""
    if not rows:
        return
    columns = tuple(sorted({k for row in rows for k in row}))
    executemany(conn, _replacing(conn, columns), rows, ("insert_results", columns))


# What a cache hit takes from the result it repeats; the rest is its own (no latency, no
# cost, no attempts; `cache_source` names where it came from).
COPIED = ("output", "finish_reason", "input_tokens", "output_tokens", "response_model",
          "fingerprint", *RESULT_DETAILS)
_COPY_PARAMS = ("run_id", "idx", "cache_source", "finished_at", "src_run", "src_idx")


def copy_results(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert cache hits as copies of the stored results they repeat, set-wise: each row
    names its trial (``run_id``, ``idx``), ``cache_source``, ``finished_at`` and the result
    copied (``src_run``, ``src_idx``). The output never travels through Python; as with
    `insert_results`, a hit replaces a stored result that is not ok, never an ok one."""
    if not rows:
        return
    src = Result.__table__.alias("src")
    own = {"run_id": bindparam("run_id", type_=Result.run_id.type),
           "idx": bindparam("idx", type_=Result.idx.type),
           "status": literal("ok"), "latency_ms": null(), "ttft_ms": null(),
           "tokens_per_s": null(), "cost_usd": literal(0.0), "attempts": literal(0),
           "error_kind": null(), "error": null(), "cache_hit": true(),
           "cacheable": literal(False, Result.cacheable.type),
           "cache_source": bindparam("cache_source", type_=Result.cache_source.type),
           "finished_at": bindparam("finished_at", type_=Result.finished_at.type)}
    names = [*own, *COPIED]
    query = (select(*own.values(), *(src.c[c] for c in COPIED))
             .where(src.c.run_id == bindparam("src_run"), src.c.idx == bindparam("src_idx")))
    done = executemany(conn, _replacing(conn, names, query),
                       [{k: r[k] for k in _COPY_PARAMS} for r in rows], "copy_results")
    if done != len(rows):  # -1 where the driver cannot tell: then look
        _vanished(conn, rows)


def _vanished(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Hits left without a result because the result they repeat was deleted meanwhile
    (say, its run): recorded as errors, which resume sends again."""
    have = {(r, i) for r, i in conn.execute(
        select(Result.run_id, Result.idx).where(Result.run_id.in_({r["run_id"] for r in rows}),
                                                Result.idx.in_([r["idx"] for r in rows])))}
    insert_results(conn, [{
        "run_id": r["run_id"], "idx": r["idx"], "status": "error", "attempts": 0,
        "error_kind": "transient", "cache_hit": False, "cacheable": False,
        "finished_at": r["finished_at"],
        "error": f"the cached result {r['cache_source']} this trial repeats was deleted "
                 "before it could be copied; resume sends the call"}
        for r in rows if (r["run_id"], r["idx"]) not in have])
