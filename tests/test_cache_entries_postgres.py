"""The cache's index on a real PostgreSQL: its triggers keep the same entries the SQLite
triggers do, and a run being sent enters it when it ends (the tests of test_cache_entries.py
and test_cache_pending.py, run here against PostgreSQL); an upgrade fills it, a downgrade
indexes the pending runs, and an upgrade beside a running writer waits for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from test_cache_entries import (  # noqa: F401
    _entries,
    check_upgrade_fills_the_entries,
    downgraded,
    test_a_deleted_runs_entries_go_and_the_next_newest_source_answers,
    test_a_result_not_for_the_cache_is_never_an_entry,
    test_a_resumed_trial_whose_error_is_replaced_by_an_answer_becomes_the_entry,
    test_fresh_ok_results_are_entries_hits_and_errors_never_and_the_newest_answers,
)
from test_cache_pending import (  # noqa: F401
    _died,
    _pending,
    _sent,
    check_downgrade_indexes_the_pending_runs,
    test_a_dead_runs_answers_serve_the_next_lookup,
    test_a_resumed_run_is_indexed_at_its_end_again,
    test_a_run_being_sent_enters_the_index_when_it_is_released,
    test_a_run_on_another_host_is_dead_once_its_heartbeat_is_stale,
    test_a_run_taken_over_is_left_to_its_new_owner,
    test_a_store_that_may_only_read_looks_up_without_filling,
    test_an_interrupted_or_failed_run_is_indexed_too,
    test_deleting_a_pending_run_deletes_its_pending_row,
    test_plans_see_a_dead_runs_answers,
)
from test_postgres import emptied, postgres_url, pytestmark  # noqa: F401
from test_store_queries import T0, _record

from promptlab.store import Store
from promptlab.store.tables import Result, Run, StoredTrial


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:  # noqa: F811
    yield from emptied(postgres_url)


def test_an_older_postgres_database_gets_its_entries_when_it_is_upgraded(
        postgres_url: str, store: Store) -> None:  # noqa: F811
    check_upgrade_fills_the_entries(postgres_url)


def test_a_postgres_downgrade_indexes_the_pending_runs(
        postgres_url: str, store: Store) -> None:  # noqa: F811
    store.close()
    check_downgrade_indexes_the_pending_runs(postgres_url)


def test_the_upgrade_waits_for_a_writer_instead_of_deadlocking_with_it(
        postgres_url: str, store: Store) -> None:  # noqa: F811
    """A run of an older promptlab writing while a newer command upgrades the database:
    the writer holds trials (its rows go first) and then wants results. The migration
    locks trials before results, as writers do, so it waits for the writer to commit; it
    locked results first and then waited for trials, a deadlock PostgreSQL broke by
    failing one of them."""
    store.close()
    downgraded(postgres_url, "0008")
    writer = create_engine(postgres_url)
    record = _record("w", 0, model="x", row="r", cache_key="k")
    failures: list[BaseException] = []

    def upgrade() -> None:
        try:
            Store.open(postgres_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    try:
        with writer.connect() as conn:
            conn.execute(insert(Run).values(
                id="w", name="w", status="running", created_at=T0, planned=1,
                config_json="{}", overrides_json="[]", config_sha256="0" * 64,
                manifest_json="{}"))
            conn.commit()
            conn.execute(insert(StoredTrial).values(**record.trial))  # holds trials
            upgrading = threading.Thread(target=upgrade)
            upgrading.start()
            deadline = time.monotonic() + 30
            while not _waiting_for_a_lock(writer) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _waiting_for_a_lock(writer), "the upgrade never waited for the writer"
            conn.execute(insert(Result).values(**record.result))  # then wants results
            conn.commit()
        upgrading.join(60)
        assert not upgrading.is_alive() and failures == []
        with Store.open(postgres_url) as upgraded:
            assert upgraded.cache_sources(["k"]) == {"k": ("w", 0)}
    finally:
        writer.dispose()


def _waiting_for_a_lock(engine: Any) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
                    .scalar())


def _write_in_flight(store: Store, run_id: str, idx: int, key: str) -> tuple[Any, Any]:
    """A connection with a trial and an ok result of `run_id` inserted, not committed: a
    shard's last commit, on its way."""
    record = _record(run_id, idx, model="x", row=f"r{idx}", cache_key=key)
    conn = store.engine.connect()
    tx = conn.begin()
    conn.execute(insert(StoredTrial).values(**record.trial))
    conn.execute(insert(Result).values(**record.result))
    return conn, tx


@pytest.mark.parametrize("end", ["release", "settle"])
def test_a_result_committed_while_its_run_ends_is_indexed(
        store: Store, end: str) -> None:  # noqa: F811
    """Under READ COMMITTED the in-flight result's trigger saw the pending row, and the
    fill's snapshot could not see the result: it was in neither. The fill now waits for
    writes in flight."""
    _sent(store, "a")
    store.write([_record("a", 0, model="x", row="r0", cache_key="k0")])
    if end == "settle":
        _died(store, "a")  # the launcher of the shards was killed; a shard still writes
    conn, tx = _write_in_flight(store, "a", 1, "k1")
    failures: list[BaseException] = []

    def finish() -> None:
        try:
            if end == "release":
                store.release("a", "tok", "interrupted")
            else:
                with Store.open(store.url) as other:
                    assert other.settle_cache() == ["a"]
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    ending = threading.Thread(target=finish)
    try:
        ending.start()
        deadline = time.monotonic() + 30
        while not _waiting_for_a_lock(store.engine) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_for_a_lock(store.engine), "the fill did not wait for the writer"
        tx.commit()
    finally:
        conn.close()
        ending.join(60)
    assert not ending.is_alive() and failures == []
    assert _entries(store) == {("k0", "a", 0), ("k1", "a", 1)} and _pending(store) == set()
