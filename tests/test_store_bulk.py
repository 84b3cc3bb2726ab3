"""`store.bulk.executemany` stores exactly what ``conn.execute(stmt, rows)`` stores: the
same statement, each value through its column type, a column's default where a row leaves
it out, literals kept; only SQLAlchemy's work per row is skipped on SQLite."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import StatementError
from test_store_queries import _record

from promptlab.store import Store
from promptlab.store.bulk import executemany
from promptlab.store.replace import insert_results
from promptlab.store.tables import Result


def _results(i: int) -> list[dict[str, object]]:
    rows = []
    for idx, at in enumerate((datetime(2026, 11, 25, 12, 0, 0),  # no microseconds
                              datetime(2026, 11, 25, 12, 0, 0, 7))):
        row = _record("r", idx, model="x", row=f"r{idx}", status="ok" if idx else "error",
                      at=at).result
        row.update(output="é\x01" if idx else None, latency_ms=1e-300, tokens_per_s=None)
        rows.append(row)
    rows.append({**rows[0], "idx": 2})
    del rows[2]["cache_hit"], rows[2]["cacheable"]  # left to the columns' defaults
    return rows if i == 0 else [{**r, "run_id": "s"} for r in rows]


def _raw(store: Store, run_id: str) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r)[1:] for r in conn.execute(
            text("SELECT * FROM results WHERE run_id = :r ORDER BY idx"), {"r": run_id})]


def test_the_fast_path_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "b.db"))
    for run_id in ("r", "s"):
        store.create_run(run_id=run_id, name=run_id, planned=3, config={}, overrides=[],
                         manifest={}, artifacts={})
        store.write([_record(run_id, i, model="x", row=f"r{i}") for i in range(3)])
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM results"))
        sa_rows = _results(0)  # SQLAlchemy's own path, which wants one set of keys a call
        conn.execute(insert(Result), sa_rows[:2])
        conn.execute(insert(Result), sa_rows[2:])
        assert executemany(conn, insert(Result), _results(1), "test") == 3
    assert _raw(store, "r") == _raw(store, "s")
    assert _raw(store, "s")[0][-7] == "2026-11-25 12:00:00.000000"  # finished_at, as SA writes it
    with store.engine.begin() as conn:  # the upsert: an error result is replaced, ok kept
        insert_results(conn, [{**r, "output": "new", "status": "ok"} for r in _results(1)])
    assert [row[2] for row in _raw(store, "s")] == ["new", "é\x01", "new"]
    store.close()


def test_a_value_its_column_type_refuses_is_refused_as_sqlalchemy_refuses_it(
        tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "c.db"))
    store.create_run(run_id="r", name="r", planned=1, config={}, overrides=[], manifest={},
                     artifacts={})
    store.write([_record("r", 0, model="x", row="r0")])
    bad = {**_results(0)[1], "finished_at": "yesterday"}
    with store.engine.begin() as conn, pytest.raises((TypeError, StatementError)):
        conn.execute(text("DELETE FROM results"))
        executemany(conn, insert(Result), [bad], "test")
    store.close()


def test_rows_naming_different_columns_are_written_in_their_order(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "o.db"))
    store.create_run(run_id="s", name="s", planned=1, config={}, overrides=[], manifest={},
                     artifacts={})
    store.write([_record("s", i, model="x", row=f"r{i}", status="error") for i in (0, 1)])
    first, second = (dict(_results(1)[0], error=e) for e in ("first", "second"))
    other = dict(second, idx=1)
    del first["fingerprint"]  # another set of columns: another statement
    with store.engine.begin() as conn:  # an error result replaces an error result
        insert_results(conn, [other, first, second])
        assert conn.execute(text("SELECT error FROM results WHERE run_id = 's'")
                            ).scalar() == "second"
    store.close()
