"""The writer's safety net: a batch the database refuses is retried record by record, and a
record it still refuses is stored as an error row; only a database that refuses even that
stops the run, and it says so at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from promptlab.store import Record, Store, utcnow
from promptlab.store.remote import RemoteWrite
from promptlab.store.writer import BEHIND_BATCHES, BEHIND_BYTES, BatchWriter, weight

RUN = "r1"


def record(i: int) -> Record:
    """A whole, storable record of trial `i`: its trial row, one attempt and an ok result."""
    trial = {"run_id": RUN, "idx": i, "key": f"{i:064x}", "model_alias": "m",
             "provider": "openai", "model": "mock", "prompt": "p", "params_json": "{}",
             "row_id": f"r{i}", "row_json": "{}", "repeat": 0, "messages_json": "[]",
             "endpoint": "http://127.0.0.1:9/v1", "cache_key": f"{i:064x}"}
    attempt = {"run_id": RUN, "idx": i, "number": 1, "started_at": utcnow(),
               "duration_ms": 1.0, "url": "http://127.0.0.1:9/v1/chat/completions",
               "request_headers_json": "{}", "request_body": f'{{"question": {i}}}',
               "status_code": 200, "response_body": '{"choices": []}', "error_kind": None,
               "error": None, "retry_after_ms": None}
    result = {"run_id": RUN, "idx": i, "status": "ok", "output": f"answer {i}",
              "finish_reason": "stop", "input_tokens": 3, "output_tokens": 1,
              "latency_ms": 1.0, "ttft_ms": None, "tokens_per_s": None, "cost_usd": 5e-6,
              "attempts": 1, "response_model": "mock", "fingerprint": None, "error_kind": None,
              "error": None, "cache_hit": False, "cacheable": True, "cache_source": None,
              "finished_at": utcnow()}
    return Record(trial, result, [attempt])


def poisoned(i: int, table: str, column: str, value: object) -> Record:
    r = record(i)
    row = {"trials": r.trial, "results": r.result, "attempts": r.attempts[0]}[table]
    row[column] = value
    return r


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(str(tmp_path / "results.db")) as s:
        s.create_run(run_id=RUN, name="t", planned=0, config={}, overrides=[], manifest={},
                     artifacts={})
        yield s


def q(store: Store, sql: str) -> list[tuple[Any, ...]]:
    path = store.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def write_all(store: Store, records: Sequence[Record], batch_size: int = 50,
              where: str = "here") -> BatchWriter:
    """Through a writer thread writing here, or (where="child") from a child process."""
    write: Callable[[Sequence[Record]], None] = store.write
    if where == "child":
        write = RemoteWrite(store.url, store.write, store.stored_as, after_calls=0)
        write.start()
        write.check_started(60)
        assert write.remote
    w = BatchWriter(write, batch_size=batch_size, max_wait_s=0.01, sleep=lambda s: None,
                    on_close=getattr(write, "close", None))
    for r in records:
        w.put(r)
    w.close()
    return w


def test_one_unstorable_value_among_300_records_costs_only_its_own_record(
        store: Store) -> None:
    records = [record(i) for i in range(300)]
    records[137] = poisoned(137, "results", "output", [{"type": "text", "text": "x"}])
    w = write_all(store, records)
    assert not w.failed.is_set() and w.error is None
    assert (w.written, w.unstorable, w.demoted) == (300, 1, {"ok": 1})
    assert q(store, "select status, count(*) from results group by status") == [
        ("error", 1), ("ok", 299)]
    [(idx, kind, error, output, cost)] = q(
        store, "select idx, error_kind, error, output, cost_usd from results "
               "where status = 'error'")
    assert (idx, kind) == (137, "unstorable")
    assert "results.output" in error and "list" in error
    assert output == '[{"type": "text", "text": "x"}]'
    assert cost == 5e-6  # the call was paid for
    assert q(store, "select request_body from attempts where idx = 137") == [
        ('{"question": 137}',)]
    assert q(store, "select count(*) from trials") == [(300,)]


@pytest.mark.parametrize(("table", "column", "value", "stored"), [
    ("results", "output", [{"type": "text", "text": "x"}], '[{"type": "text", "text": "x"}]'),
    ("results", "output", "half \ud800 a pair", "half \ufffd a pair"),
    ("results", "input_tokens", 2**70, None),
    ("results", "output_tokens", {"n": 1}, None),
    ("results", "response_model", {"id": "m"}, '{"id": "m"}'),
    ("results", "cost_usd", [0.1], None),
    ("results", "finished_at", "yesterday", None),
    ("attempts", "response_body", {"raw": "body"}, '{"raw": "body"}'),
    ("attempts", "request_body", ["not", "text"], '["not", "text"]'),
    ("attempts", "status_code", 2**70, None),
    ("attempts", "error", "NUL\x00and \udc80", "NUL\ufffdand \ufffd"),
    ("trials", "row_id", ["a", "list"], '["a", "list"]'),
    ("trials", "params_json", {"temperature": 1}, '{"temperature": 1}'),
])
@pytest.mark.parametrize("where", ["here", "child"])
def test_a_record_the_database_refuses_becomes_an_error_row_naming_the_column(
        store: Store, table: str, column: str, value: object, stored: object,
        where: str) -> None:
    records = [record(i) for i in range(5)]
    records[2] = poisoned(2, table, column, value)
    w = write_all(store, records, where=where)
    assert (w.written, w.unstorable, w.error) == (5, 1, None)
    [(status, kind, error)] = q(store, "select status, error_kind, error from results "
                                       "where idx = 2")
    assert (status, kind) == ("error", "unstorable")
    assert f"{table}.{column}" in error
    assert q(store, "select count(*) from attempts") == [(5,)]  # the attempt is kept
    if column != "finished_at":
        assert q(store, f"select {column} from {table} where idx = 2") == [(stored,)]
    assert q(store, "select count(*) from results where status = 'ok'") == [(4,)]


def test_the_error_message_is_bounded_however_big_the_value(store: Store) -> None:
    w = write_all(store, [poisoned(0, "results", "output", list(range(100_000)))])
    assert w.unstorable == 1
    [(error,)] = q(store, "select error from results")
    assert "results.output" in error and len(error) <= 1000


def test_an_attempt_with_oversized_text_keeps_its_request_body(store: Store) -> None:
    r = poisoned(0, "attempts", "error_kind", ["not", "a", "kind", "x" * 100])
    w = write_all(store, [r])
    assert w.unstorable == 1
    [(kind, body)] = q(store, "select error_kind, request_body from attempts")
    assert len(kind) <= 20 and body == '{"question": 0}'


def test_resumed_trials_write_no_second_trial_row(store: Store) -> None:
    write_all(store, [record(0)])
    with sqlite3.connect(store.url.removeprefix("sqlite:///")) as conn:
        conn.execute("delete from results")
    again = poisoned(0, "results", "output", {"parts": []})
    again.attempts[0]["number"] = 2
    again.trial_exists = True
    w = write_all(store, [again])
    assert (w.unstorable, w.error) == (1, None)
    assert q(store, "select count(*), max(number) from attempts") == [(2, 2)]


def test_a_batch_of_good_records_is_one_write(store: Store) -> None:
    calls: list[int] = []

    def counting(batch: Sequence[Record]) -> None:
        calls.append(len(batch))
        store.write(batch)

    w = BatchWriter(counting, batch_size=100, max_wait_s=10, sleep=lambda s: None)
    for i in range(100):
        w.put(record(i))
    w.close()
    assert calls == [100]


def test_one_bad_record_in_a_batch_of_256_costs_a_few_writes_not_256(store: Store) -> None:
    calls: list[int] = []

    def counting(batch: Sequence[Record]) -> None:
        calls.append(len(batch))
        store.write(batch)

    records = [record(i) for i in range(256)]
    records[77] = poisoned(77, "results", "output", ["x"])
    w = BatchWriter(counting, batch_size=256, max_wait_s=10, sleep=lambda s: None)
    for r in records:
        w.put(r)
    w.close()
    assert w.unstorable == 1 and sum(calls[1:]) < 256 * 5 and len(calls) <= 20
    assert q(store, "select count(*) from results") == [(256,)]


def database_gone() -> OperationalError:
    return OperationalError("INSERT INTO results ...", {}, Exception("disk I/O error"))


def test_database_faults_retry_the_whole_batch_and_make_no_error_rows() -> None:
    written: list[int] = []
    sleeps: list[float] = []
    faults = {"left": 2}

    def flaky(batch: Sequence[Record]) -> None:
        if faults["left"]:
            faults["left"] -= 1
            raise database_gone()
        written.extend(r.trial["idx"] for r in batch)

    w = BatchWriter(flaky, batch_size=10, max_wait_s=10, sleep=sleeps.append)
    for i in range(10):
        w.put(record(i))
    w.close()
    assert written == list(range(10))
    assert len(sleeps) == 2 and w.unstorable == 0 and not w.failed.is_set()


def wait_for(event: threading.Event, seconds: float = 5.0) -> bool:
    return event.wait(seconds)


def test_a_dead_database_is_reported_at_once_not_at_close() -> None:
    sleeps: list[float] = []

    def dead(batch: Sequence[Record]) -> None:
        raise database_gone()

    w = BatchWriter(dead, batch_size=3, max_wait_s=0.01, sleep=sleeps.append)
    for i in range(3):
        w.put(record(i))
    assert wait_for(w.failed)  # before close
    assert isinstance(w.error, OperationalError)
    assert sleeps  # it was retried first
    with pytest.raises(OperationalError, match="disk I/O error") as raised:
        w.close()
    assert any("resume" in note for note in getattr(raised.value, "__notes__", []))


def test_a_database_that_refuses_even_an_error_row_stops_the_writer() -> None:
    attempts = {"n": 0}

    def refusing(batch: Sequence[Record]) -> None:
        attempts["n"] += 1
        raise RuntimeError("constraint failed")

    w = BatchWriter(refusing, batch_size=64, max_wait_s=0.01, sleep=lambda s: None)
    for i in range(64):
        w.put(record(i))
    assert wait_for(w.failed)
    n = attempts["n"]
    assert n <= 12  # halving down to one record, then its error row: no 64 tries
    for i in range(64, 128):  # later records are kept, not tried against a refusing database
        w.put(record(i))
    w.flush()
    time.sleep(0.1)
    assert attempts["n"] == n
    with pytest.raises(RuntimeError, match="constraint failed"):
        w.close()


def test_a_record_the_net_cannot_mend_stops_the_writer_rather_than_vanishing(
        store: Store) -> None:
    broken = Record({"run_id": RUN, "idx": 1}, "not a row")  # type: ignore[arg-type]
    w = BatchWriter(store.write, batch_size=2, max_wait_s=0.01, sleep=lambda s: None)
    w.put(record(0))
    w.put(broken)
    assert wait_for(w.failed)
    with pytest.raises(ValueError):
        w.close()
    assert q(store, "select idx from results") == [(0,)]


def test_records_kept_after_a_failure_are_stored_at_close_if_the_database_came_back(
        store: Store) -> None:
    down = threading.Event()
    down.set()

    def sometimes(batch: Sequence[Record]) -> None:
        if down.is_set():
            raise database_gone()
        store.write(batch)

    w = BatchWriter(sometimes, batch_size=5, max_wait_s=0.01, sleep=lambda s: None)
    for i in range(5):
        w.put(record(i))
    assert wait_for(w.failed)
    for i in range(5, 10):
        w.put(record(i))
    down.clear()
    with pytest.raises(OperationalError):  # the run stopped early: it still fails
        w.close()
    assert q(store, "select count(*) from results where status = 'ok'") == [(10,)]


def test_a_run_whose_database_is_gone_mid_run_stops_writing_and_reports(
        store: Store) -> None:
    w = BatchWriter(store.write, batch_size=5, max_wait_s=0.01, sleep=lambda s: None)
    for i in range(5):
        w.put(record(i))
    w.flush()
    deadline = time.monotonic() + 5
    while w.written < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    with sqlite3.connect(store.url.removeprefix("sqlite:///")) as conn:
        conn.execute("drop table results")
    for i in range(5, 10):
        w.put(record(i))
    assert wait_for(w.failed)
    with pytest.raises(OperationalError, match="no such table"):
        w.close()


values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(max_size=20),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                        max_size=2),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xDFFF), max_size=30),
)
RESULT_COLUMNS = ["output", "finish_reason", "input_tokens", "output_tokens", "latency_ms",
                  "ttft_ms", "tokens_per_s", "cost_usd", "attempts", "response_model",
                  "fingerprint", "error_kind", "error", "cache_hit", "cacheable",
                  "cache_source", "finished_at"]
ATTEMPT_COLUMNS = ["started_at", "duration_ms", "url", "request_headers_json", "request_body",
                   "status_code", "response_body", "error_kind", "error", "retry_after_ms"]
# Not the trial's key: it is unique per run, so a poisoned key could clash with another row's.
TRIAL_COLUMNS = ["model_alias", "provider", "model", "prompt", "params_json", "row_id",
                 "row_json", "repeat", "messages_json", "endpoint", "cache_key"]
COLUMNS = ([("results", c) for c in RESULT_COLUMNS] + [("attempts", c) for c in ATTEMPT_COLUMNS]
           + [("trials", c) for c in TRIAL_COLUMNS])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(COLUMNS), values), min_size=1, max_size=4))
def test_any_values_in_any_columns_are_stored_one_way_or_another(
        store: Store, poison: list[tuple[tuple[str, str], object]]) -> None:
    base = q(store, "select coalesce(max(idx), -1) + 1 from trials")[0][0]
    good, bad = record(base), record(base + 1)
    rows = {"trials": bad.trial, "results": bad.result, "attempts": bad.attempts[0]}
    for (table, column), value in poison:
        rows[table][column] = value
    w = write_all(store, [good, bad, record(base + 2)])
    assert w.error is None
    assert q(store, f"select count(*) from results where idx between {base} and {base + 2}"
             ) == [(3,)]


def test_a_writer_behind_takes_the_waiting_batches_together_up_to_its_most(
        store: Store) -> None:
    # A commit rewrites every index page it touched: behind (a burst of cache hits), the
    # writer takes what waits in one transaction, up to BEHIND_BATCHES batches.
    calls: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def held_first(batch: Sequence[Record]) -> None:
        if not calls:
            entered.set()
            release.wait(10)  # the rest is handed over while this write is held
        calls.append(len(batch))
        store.write(batch)

    w = BatchWriter(held_first, batch_size=10, max_wait_s=10, sleep=lambda s: None)
    for i in range(10):
        w.put(record(i))
    assert entered.wait(10)
    total = 10 + 10 * (BEHIND_BATCHES + 5)
    for i in range(10, total):
        w.put(record(i))
    release.set()
    w.close()
    assert calls == [10, 10 * BEHIND_BATCHES, 50]
    assert q(store, "select count(*) from results") == [(total,)]


def test_big_records_hold_the_runner_back_by_their_bytes_not_their_count(
        store: Store) -> None:
    # The runner waits while `behind(most)`: past `most` records, or past BEHIND_BYTES of
    # messages, outputs and bodies however few the records (a 4 MB answer is not 750 B).
    entered, release = threading.Event(), threading.Event()

    def held(batch: Sequence[Record]) -> None:
        entered.set()
        release.wait(10)
        store.write(batch)

    w = BatchWriter(held, batch_size=1, max_wait_s=10, sleep=lambda s: None)
    big = BEHIND_BYTES // 8 + 1
    try:
        for i in range(8):
            r = record(i)
            r.result["output"] = "x" * big
            w.put(r)
            assert not w.behind(20_000) or i == 7
            if i == 0:
                assert entered.wait(10)  # the first is being written: the rest wait
        assert w.behind(20_000) and w.backlog == 8  # eight records, over the bytes
        assert weight(record(0)) < 1_000 and weight(r) > big
    finally:
        release.set()
        w.close()
    assert not w.behind(0)
    assert q(store, "select count(*) from results") == [(8,)]
