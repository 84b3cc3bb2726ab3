"""The cache's index (`cache_entries`, 0009): every fresh ok result (a source; a cache hit's
copy never is) under its fingerprint, kept by triggers on results in the writing
transaction, so a lookup reads a key's sources however many runs have repeated it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from test_store_queries import T0, _record

from promptlab.store import Record, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(str(tmp_path / "e.db"))
    yield s
    s.close()


def _run(store: Store, run_id: str) -> None:
    store.create_run(run_id=run_id, name=run_id, planned=1, config={}, overrides=[],
                     manifest={}, artifacts={})


def _hit(run_id: str, idx: int, key: str, source: tuple[str, int]) -> Record:
    trial = _record(run_id, idx, model="x", row=f"r{idx}", cache_key=key).trial
    result = {"run_id": run_id, "idx": idx, "status": "ok",
              "cache_source": f"{source[0]}:{source[1]}", "finished_at": T0}
    return Record(trial, result, [], False, copy_of=source)


def _entries(store: Store) -> set[tuple[str, str, int]]:
    with store.engine.connect() as conn:
        return {(k, r, i) for k, r, i in conn.execute(
            text("SELECT cache_key, run_id, idx FROM cache_entries"))}


def _vm_steps(store: Store, keys: list[str]) -> int:
    """SQLite virtual-machine steps (in hundreds) that `cache_sources(keys)` costs."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def on_execute(conn: Any, *_: Any) -> None:
        conn.connection.driver_connection.set_progress_handler(count, 100)

    event.listen(store.engine, "before_cursor_execute", on_execute)
    try:
        store.cache_sources(keys)
    finally:
        event.remove(store.engine, "before_cursor_execute", on_execute)
    return steps[0]


def test_a_lookup_costs_the_same_however_many_runs_repeated_the_requests(
        store: Store) -> None:
    keys = [f"key{i}" for i in range(200)]
    _run(store, "src")
    store.write([_record("src", i, model="x", row=f"r{i}", cache_key=k)
                 for i, k in enumerate(keys)])
    _run(store, "again0")
    store.write([_hit("again0", i, k, ("src", i)) for i, k in enumerate(keys)])
    after_one = _vm_steps(store, keys)
    for n in range(1, 12):  # eleven more fully cached re-runs
        _run(store, f"again{n}")
        store.write([_hit(f"again{n}", i, k, ("src", i)) for i, k in enumerate(keys)])
    assert store.cache_sources(keys) == {k: ("src", i) for i, k in enumerate(keys)}
    # Before the index each re-run added a candidate per key to join and sort: 12 re-runs
    # cost 4 times the steps of one (352 against 88).
    assert _vm_steps(store, keys) <= after_one * 1.2


def test_fresh_ok_results_are_entries_hits_and_errors_never_and_the_newest_answers(
        store: Store) -> None:
    _run(store, "a")
    _run(store, "b")
    store.write([_record("a", 0, model="x", row="r", cache_key="k"),
                 _record("a", 1, model="x", row="s", cache_key="j", at=T0 + timedelta(hours=2))])
    assert _entries(store) == {("k", "a", 0), ("j", "a", 1)}
    store.write([_record("b", 0, model="x", row="r", cache_key="k", at=T0 + timedelta(hours=1)),
                 _record("b", 1, model="x", row="s", cache_key="j", at=T0 + timedelta(hours=1)),
                 _record("b", 2, model="x", row="t", cache_key="k", status="error",
                         at=T0 + timedelta(hours=3)),
                 _hit("b", 3, "k", ("a", 0))])
    assert _entries(store) == {("k", "a", 0), ("j", "a", 1), ("k", "b", 0), ("j", "b", 1)}
    # The newest source answers: b's for k, a's (two hours later) for j.
    assert store.cache_sources(["k", "j", "none"]) == {"k": ("b", 0), "j": ("a", 1)}
    assert store.cached_keys(["k", "j", "none"]) == {"k", "j"}
    assert store.cache_entries(10) == {"k", "j"} and store.cache_entries(1) is None


def test_a_result_not_for_the_cache_is_never_an_entry(store: Store) -> None:
    _run(store, "a")
    written = _record("a", 0, model="x", row="r", cache_key="k")
    written.result["cacheable"] = False  # run.cache=write-off, say
    store.write([written])
    assert _entries(store) == set() and store.cache_sources(["k"]) == {}


def test_a_resumed_trial_whose_error_is_replaced_by_an_answer_becomes_the_entry(
        store: Store) -> None:
    _run(store, "a")
    store.write([_record("a", 0, model="x", row="r", cache_key="k", status="error")])
    assert _entries(store) == set()
    again = _record("a", 0, model="x", row="r", cache_key="k", at=T0 + timedelta(hours=1))
    again.trial_exists = True
    again.attempts[0]["number"] = 2
    store.write([again])  # the upsert replaces the error: an UPDATE
    assert _entries(store) == {("k", "a", 0)}
    assert store.cache_sources(["k"]) == {"k": ("a", 0)}


def test_a_deleted_runs_entries_go_and_the_next_newest_source_answers(store: Store) -> None:
    for n, run_id in enumerate(("old", "mid", "new")):
        _run(store, run_id)
        store.write([_record(run_id, 0, model="x", row="r", cache_key="k",
                             at=T0 + timedelta(hours=n)),
                     _record(run_id, 1, model="x", row="s", cache_key=f"only-{run_id}",
                             at=T0 + timedelta(hours=n))])
    _run(store, "copy")
    store.write([_hit("copy", 0, "k", ("new", 0))])
    assert store.cache_sources(["k"]) == {"k": ("new", 0)}
    store.delete_run("new")
    assert store.cache_sources(["k", "only-new"]) == {"k": ("mid", 0)}
    store.delete_run("old")
    assert _entries(store) == {("k", "mid", 0), ("only-mid", "mid", 1)}
    store.delete_run("mid")
    assert _entries(store) == set()
    assert store.cache_sources(["k"]) == {}  # the copy is not a source


def downgraded(url: str, revision: str) -> None:
    """The database at `url` migrated down to `revision` by Alembic."""
    from alembic import command

    from promptlab.store.database import alembic_config, open_engine

    engine = open_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()


def check_upgrade_fills_the_entries(url: str) -> None:
    """Two runs written, the database taken down to 0008 (no index, no triggers, the
    trials' fingerprint index back), opened again: the migration fills the index."""
    store = Store.open(url)
    for n, run_id in enumerate(("a", "b")):
        _run(store, run_id)
        store.write([_record(run_id, 0, model="x", row="r", cache_key="k",
                             at=T0 + timedelta(hours=n)),
                     _record(run_id, 1, model="x", row="s", cache_key=f"k{run_id}",
                             status="error")])
    _run(store, "c")
    store.write([_hit("c", 0, "k", ("b", 0))])
    store.close()
    downgraded(url, "0008")
    upgraded = Store.open(url)
    try:
        assert _entries(upgraded) == {("k", "a", 0), ("k", "b", 0)}
        assert upgraded.cache_sources(["k", "ka", "kb"]) == {"k": ("b", 0)}
        _run(upgraded, "d")
        upgraded.write([_record("d", 0, model="x", row="r", cache_key="k",
                                at=T0 + timedelta(hours=5))])
        assert upgraded.cache_sources(["k"]) == {"k": ("d", 0)}
    finally:
        upgraded.close()


def test_an_older_database_gets_its_entries_when_it_is_upgraded(tmp_path: Path) -> None:
    from promptlab.store.database import resolve_url

    url = resolve_url(str(tmp_path / "old.db"))
    check_upgrade_fills_the_entries(url)
    with sqlite3.connect(tmp_path / "old.db") as conn:  # and down again: 0008's schema
        downgraded(url, "0008")
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert "ix_trials_cache_key" in names and not {n for n in names if "cache_entries" in n}
