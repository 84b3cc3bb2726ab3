"""A run being sent (0010, `cache_pending`): the triggers pass over its results, which go
into the cache's index at once when it ends, or, if its process died, at the next lookup
of another one. Nothing it stored is lost to the cache either way."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update
from test_cache_entries import _entries, downgraded
from test_store_queries import T0, _record

from promptlab.store import Store
from promptlab.store.tables import Run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(str(tmp_path / "p.db"))
    yield s
    s.close()


def _sent(store: Store, run_id: str, token: str = "tok") -> None:
    """A run as `Session` starts one: owned by this process, indexed when it ends."""
    store.create_run(run_id=run_id, name=run_id, planned=4, config={}, overrides=[],
                     manifest={}, artifacts={}, owner_token=token, index_at_end=True)


def _pending(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(text("SELECT run_id FROM cache_pending")).scalars())


def _results(run_id: str) -> list:
    return [_record(run_id, 0, model="x", row="r", cache_key="k"),
            _record(run_id, 1, model="x", row="s", cache_key="j", at=T0 + timedelta(hours=1)),
            _record(run_id, 2, model="x", row="t", cache_key="e", status="error")]


def _died(store: Store, run_id: str) -> None:
    """The run's owner as a process killed with SIGKILL leaves it: a pid that is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(owner_pid=gone.pid))


def test_a_run_being_sent_enters_the_index_when_it_is_released(store: Store) -> None:
    _sent(store, "a")
    store.write(_results("a"))
    assert _entries(store) == set() and _pending(store) == {"a"}
    # Another process's lookup leaves a run whose owner lives to its owner.
    with Store.open(store.url) as other:
        assert other.cache_sources(["k", "j"]) == {}
    assert store.release("a", "tok", "completed")
    assert _entries(store) == {("k", "a", 0), ("j", "a", 1)} and _pending(store) == set()
    assert store.cache_sources(["k", "j", "e"]) == {"k": ("a", 0), "j": ("a", 1)}
    # From then on the triggers keep its entries: a resume replacing its error.
    again = _record("a", 2, model="x", row="t", cache_key="e", at=T0 + timedelta(hours=2))
    again.trial_exists = True
    again.attempts[0]["number"] = 2
    store.write([again])
    assert ("e", "a", 2) in _entries(store)


def test_an_interrupted_or_failed_run_is_indexed_too(store: Store) -> None:
    for run_id, status in (("i", "interrupted"), ("f", "failed")):
        _sent(store, run_id)
        store.write([_record(run_id, 0, model="x", row="r", cache_key=f"k{run_id}")])
        store.release(run_id, "tok", status)
    assert _entries(store) == {("ki", "i", 0), ("kf", "f", 0)} and _pending(store) == set()


def test_a_run_taken_over_is_left_to_its_new_owner(store: Store) -> None:
    _sent(store, "a")
    store.write(_results("a"))
    _died(store, "a")  # the owner stalled; a resume took the run over
    token = store.claim("a")
    assert not store.release("a", "tok", "completed")  # the old owner, back
    assert _entries(store) == set() and _pending(store) == {"a"}
    assert store.release("a", token, "completed")
    assert _entries(store) == {("k", "a", 0), ("j", "a", 1)} and _pending(store) == set()


def test_a_resumed_run_is_indexed_at_its_end_again(store: Store) -> None:
    """A run from before 0010, or one settled after its process died: resumed, its new
    results wait for its end like a new run's."""
    _sent(store, "a")
    store.write(_results("a"))
    store.release("a", "tok", "interrupted")
    token = store.claim("a")
    assert _pending(store) == {"a"}
    again = _record("a", 2, model="x", row="t", cache_key="e", at=T0 + timedelta(hours=2))
    again.trial_exists = True
    again.attempts[0]["number"] = 2
    store.write([again])
    assert ("e", "a", 2) not in _entries(store)
    store.release("a", token, "completed")
    assert _entries(store) == {("k", "a", 0), ("j", "a", 1), ("e", "a", 2)}


def test_a_dead_runs_answers_serve_the_next_lookup(store: Store) -> None:
    _sent(store, "dead")
    store.write(_results("dead"))
    _sent(store, "live")
    store.write([_record("live", 0, model="x", row="r", cache_key="l")])
    _died(store, "dead")
    with Store.open(store.url) as other:
        assert other.cache_sources(["k", "j", "l"]) == {"k": ("dead", 0), "j": ("dead", 1)}
        assert other.settle_cache() == []  # once per store
    assert _pending(store) == {"live"}
    assert ("k", "dead", 0) in _entries(store)
    # A resume makes it pending again: its new results go in when it ends again.
    token = store.claim("dead")
    assert _pending(store) == {"live", "dead"}
    store.write([_record("dead", 3, model="x", row="u", cache_key="m")])
    assert ("m", "dead", 3) not in _entries(store)
    assert store.release("dead", token, "completed")
    assert {("m", "dead", 3), ("k", "dead", 0)} <= _entries(store)
    assert _pending(store) == {"live"}


def test_lookups_at_once_all_wait_for_the_dead_runs_answers(store: Store,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each endpoint's lane looks its first chunk up at once, on its own thread: a second
    lookup went on while the first was still filling, missed the dead run's answers, and
    sent their calls again (tests/test_kill_resume.py, with two endpoints)."""
    _sent(store, "dead")
    store.write(_results("dead"))
    _died(store, "dead")
    with Store.open(store.url) as other:
        fill = type(other).fill_cache

        fills: list[str] = []

        def slow_fill(self: Store, conn: object, run_id: str) -> bool:
            fills.append(run_id)
            time.sleep(0.3)  # the first lookup's fill, still going when the second looks
            return fill(self, conn, run_id)  # type: ignore[arg-type]
        monkeypatch.setattr(type(other), "fill_cache", slow_fill)
        with ThreadPoolExecutor(2) as pool:
            found = list(pool.map(other.cache_sources, [["k"], ["j"]]))
    assert found == [{"k": ("dead", 0)}, {"j": ("dead", 1)}]
    assert fills == ["dead"]  # the second waited for the first, and did not fill again


def test_a_run_on_another_host_is_dead_once_its_heartbeat_is_stale(store: Store) -> None:
    _sent(store, "far")
    store.write(_results("far"))
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == "far").values(owner_host="elsewhere"))
    with Store.open(store.url) as other:
        assert other.cache_sources(["k"]) == {}  # a fresh heartbeat: alive
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == "far").values(
            heartbeat_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)))
    with Store.open(store.url) as other:
        assert other.cache_sources(["k"]) == {"k": ("far", 0)}


def test_plans_see_a_dead_runs_answers(store: Store) -> None:
    _sent(store, "dead")
    store.write(_results("dead"))
    _died(store, "dead")
    with Store.open(store.url) as other:
        assert other.cache_entries(10) == {"k", "j"}
    with Store.open(store.url) as other:
        assert other.cached_keys(["k", "x"]) == {"k"}


def test_deleting_a_pending_run_deletes_its_pending_row(store: Store) -> None:
    _sent(store, "a")
    store.write(_results("a"))
    store.delete_run("a")
    assert _pending(store) == set() and _entries(store) == set()


def check_downgrade_indexes_the_pending_runs(url: str) -> None:
    """Down to 0009 (triggers only): what a pending run stored goes into the index first."""
    store = Store.open(url)
    _sent(store, "a")
    store.write(_results("a"))
    store.close()
    downgraded(url, "0009")
    with Store.open(url) as upgraded:  # and up again
        assert _entries(upgraded) == {("k", "a", 0), ("j", "a", 1)}
        assert _pending(upgraded) == set()


def test_a_downgrade_indexes_the_pending_runs(tmp_path: Path) -> None:
    from promptlab.store.database import resolve_url

    check_downgrade_indexes_the_pending_runs(resolve_url(str(tmp_path / "d.db")))


def test_a_store_that_may_only_read_looks_up_without_filling(store: Store) -> None:
    _sent(store, "dead")
    store.write(_results("dead"))
    _died(store, "dead")
    with Store.open(store.url, read_only=True) as reader:
        assert reader.cache_sources(["k"]) == {}  # no crash; the run waits for a writer
    assert _pending(store) == {"dead"}
    with Store.open(store.url) as writer:
        assert writer.cache_sources(["k"]) == {"k": ("dead", 0)}


def test_cache_why_says_a_runs_answers_serve_others_once_it_ends(store: Store) -> None:
    from promptlab.cache import explain

    _sent(store, "a")
    store.write([_record("a", 0, model="x", row="r", cache_key="k")])
    assert store.cache_sources(["k"]) == {}  # an hour later, the same request: a miss
    store.write([_record("a", 1, model="x", row="r", cache_key="k",
                         at=T0 + timedelta(hours=1))])
    _sent(store, "b")  # a run sent beside it, the same request again
    store.write([_record("b", 0, model="x", row="r", cache_key="k",
                         at=T0 + timedelta(hours=2))])
    store.release("b", "tok", "completed")
    store.release("a", "tok", "completed")
    same_run = "\n".join(explain(store, "a", "1"))
    assert "(a:0) was stored earlier in this same run" in same_run, same_run
    beside = "\n".join(explain(store, "b", "0"))
    assert "(a:1) was stored before this trial finished, but its run had not ended" in beside
