"""Nothing lost on PostgreSQL, which (unlike SQLite) enforces String(n) lengths and refuses
NUL characters in text: a real throwaway cluster on 127.0.0.1, as in test_postgres."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FakeClock, prepared_for
from sqlalchemy import text
from test_nothing_lost import POISONED, Counting, chat, many  # noqa: F401
from test_postgres import postgres_url, pytestmark  # noqa: F401
from test_writer_salvage import poisoned, record

from promptlab.runner.session import NewRun, Session
from promptlab.store import Store
from promptlab.store.writer import BatchWriter

LONG_ID = "row-" + "x" * 296  # 300 characters; trials.row_id is String(200)


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Store]:  # noqa: F811
    with Store.open(postgres_url) as store:
        yield store


def rows(store: Store, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def session(project: Path, store: Store, handler: Counting) -> tuple[Session, httpx.AsyncClient]:
    prepared = prepared_for(project)
    clock = FakeClock()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Session(store, prepared.spec, prepared.renderer, client=client, sleep=clock.sleep,
                   clock=clock), client


def test_a_300_character_row_id_and_a_nul_in_an_answer_lose_nothing_on_postgres(
        many: Path, pg: Store) -> None:  # noqa: F811
    data = many / "data/rows.jsonl"
    lines = data.read_text().splitlines()
    lines[5] = json.dumps({"id": LONG_ID, "n": 5})
    data.write_text("\n".join(lines) + "\n")
    # PostgreSQL text cannot hold NUL: the answer to one question carries one.
    handler = Counting([POISONED], lambda n: chat("before\u0000after"))
    s, client = session(many, pg, handler)
    try:
        stats = s.run(NewRun(config=prepared_for(many).loaded.config), "pg-run").stats
    finally:
        asyncio.run(client.aclose())
    assert len(handler.seen) == 300 and stats.done == 300
    assert rows(pg, "select status, count(*) from results where run_id = 'pg-run' "
                    "group by status order by status") == [("error", 1), ("ok", 299)]
    [(kind, error, output)] = rows(pg, "select error_kind, error, output from results "
                                       "where run_id = 'pg-run' and status = 'error'")
    assert kind == "unstorable" and "results.output" in error and "NUL" in error
    assert output == "before\ufffdafter"
    # The raw answer is kept in its attempt (JSON escapes the NUL, so it is storable).
    [(raw,)] = rows(pg, "select a.response_body from attempts a join trials t on "
                        "a.run_id = t.run_id and a.idx = t.idx where t.run_id = 'pg-run' "
                        "and t.row_id = :rid", rid=f"r{POISONED:03d}")
    assert "\\u0000" in raw
    [(stored_id,)] = rows(pg, "select row_id from trials where run_id = 'pg-run' and idx = 5")
    assert len(stored_id) == 200 and stored_id.startswith("row-xxx")

    again = Counting([], chat)
    s, client = session(many, pg, again)
    try:
        s.resume("pg-run")
    finally:
        asyncio.run(client.aclose())
    assert again.seen == [POISONED]
    assert rows(pg, "select status, count(*) from results where run_id = 'pg-run' "
                    "group by status") == [("ok", 300)]


@pytest.mark.parametrize(("table", "column", "value", "check"), [
    ("trials", "row_id", LONG_ID, lambda v: len(v) == 200 and v.startswith("row-x")),
    ("results", "response_model", "m" * 501, lambda v: len(v) == 500 and "[501 chars]" in v),
    ("results", "input_tokens", 2**31, lambda v: v is None),
    ("results", "output", "nul\x00inside", lambda v: v == "nul\ufffdinside"),
    ("attempts", "response_body", "nul\x00inside", lambda v: v == "nul\ufffdinside"),
    ("attempts", "error_kind", "k" * 21, lambda v: len(v) == 20),
])
def test_values_postgresql_refuses_become_error_rows_and_cost_nothing_else(
        pg: Store, table: str, column: str, value: object, check: Any) -> None:
    run_id = f"w-{table}-{column}"[:32]
    pg.create_run(run_id=run_id, name="t", planned=5, config={}, overrides=[], manifest={},
                  artifacts={})
    records = [record(i) for i in range(5)]
    records[3] = poisoned(3, table, column, value)
    for r in records:
        for row in (r.trial, r.result, *r.attempts):
            row["run_id"] = run_id
    w = BatchWriter(pg.write, batch_size=5, max_wait_s=0.01, sleep=lambda s: None)
    for r in records:
        w.put(r)
    w.close()
    assert (w.written, w.unstorable, w.error) == (5, 1, None)
    assert rows(pg, "select idx, status, error_kind from results where run_id = :r "
                    "order by idx", r=run_id) == [
        (0, "ok", None), (1, "ok", None), (2, "ok", None), (3, "error", "unstorable"),
        (4, "ok", None)]
    [(error,)] = rows(pg, "select error from results where run_id = :r and idx = 3", r=run_id)
    assert f"{table}.{column}" in error
    [(stored,)] = rows(pg, f"select {column} from {table} where run_id = :r and idx = 3",
                       r=run_id)
    assert check(stored), stored
    assert rows(pg, "select count(*) from attempts where run_id = :r", r=run_id) == [(5,)]
