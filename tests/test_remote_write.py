"""A big run stores its trials from a child process (promptlab.store.remote): the same rows
as the writer thread would store, refusals and database faults treated the same, and
nothing lost or written twice when the child cannot start, is killed, or dies after a
commit it could not answer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import test_writer_salvage
from test_writer_salvage import poisoned, q, record

import promptlab.store.remote as remote_module
import promptlab.store.writer as writer_module
from promptlab.cli import main
from promptlab.store import Record, Store
from promptlab.store.faults import WriteFailed, database_fault
from promptlab.store.remote import RemoteWrite
from promptlab.store.writer import BatchWriter, trial_writer
from promptlab.testing import MockServer

store = test_writer_salvage.store  # the fixture: a database with run RUN in it


def started(store: Store, url: str | None = None) -> RemoteWrite:
    """A remote write whose child is asked to start now, and given a minute to say it has."""
    r = RemoteWrite(url or store.url, store.write, store.stored_as)
    r.start()
    if r._conn is not None:
        r.check_started(60)
    return r


@pytest.fixture
def remote(store: Store) -> Iterator[RemoteWrite]:
    r = started(store)
    assert r.remote
    yield r
    r.close()


def child_of(remote: RemoteWrite) -> Any:
    proc = remote._proc
    assert proc is not None and remote.remote
    return proc


def counts(store: Store) -> tuple[int, int, int]:
    return tuple(q(store, f"select count(*) from {t}")[0][0]  # type: ignore[return-value]
                 for t in ("trials", "attempts", "results"))


def test_the_child_starts_once_enough_calls_were_written_and_is_used_once_ready(
        store: Store) -> None:
    r = RemoteWrite(store.url, store.write, store.stored_as, after_calls=3)
    hit = record(0)
    hit.attempts.clear()  # a cache hit: no call, and it does not count
    r([hit, record(1)])
    assert r._proc is None and not r.remote
    r([record(2), record(3)])  # the third call: it starts; this batch is written here
    assert r._proc is not None
    r.check_started(60)
    assert r.remote
    r([record(4)])
    r.close()
    assert r._proc is None and counts(store) == (5, 4, 5)


def test_a_file_database_gets_a_remote_write_and_an_in_memory_one_does_not(
        store: Store) -> None:
    w = trial_writer(store, 50)
    assert isinstance(w._write, RemoteWrite) and w._on_close is not None
    w.close()
    with Store.open("sqlite://") as in_memory:  # another process could not see it
        w = trial_writer(in_memory, 50)
        assert not isinstance(w._write, RemoteWrite)
        w.close()


def test_the_child_stores_what_the_thread_would_and_ends_with_the_writer(
        store: Store, remote: RemoteWrite) -> None:
    proc = child_of(remote)
    w = BatchWriter(remote, batch_size=50, max_wait_s=0.01, on_close=remote.close)
    records = [record(i) for i in range(300)]
    records[137] = poisoned(137, "results", "output", [{"type": "text", "text": "x"}])
    records[200] = poisoned(200, "attempts", "status_code", 2**70)
    for r in records:
        w.put(r)
    w.close()
    assert proc.poll() == 0  # gone, and cleanly
    assert (w.written, w.unstorable, w.error) == (300, 2, None)
    assert counts(store) == (300, 300, 300)
    errors = dict(q(store, "select idx, error from results where status = 'error'"))
    assert set(errors) == {137, 200}
    assert "results.output" in errors[137] and "list" in errors[137]
    # The database's own words travel back: as the thread's error row would say them.
    assert "attempts.status_code" in errors[200]
    assert "(the database said OverflowError: Python int too large" in errors[200]


def test_a_fault_of_the_database_in_the_child_is_waited_out_not_split(
        store: Store, remote: RemoteWrite) -> None:
    path = store.url.removeprefix("sqlite:///")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the database comes back while the writer waits
        sleeps.append(seconds)
        with sqlite3.connect(path) as conn:
            conn.execute("alter table attempts_gone rename to attempts")

    with sqlite3.connect(path) as conn:  # "no such table": an OperationalError
        conn.execute("alter table attempts rename to attempts_gone")
    w = BatchWriter(remote, batch_size=10, max_wait_s=10, sleep=sleep)
    for i in range(10):
        w.put(record(i))
    w.close()
    assert len(sleeps) == 1 and w.unstorable == 0 and w.error is None
    assert counts(store) == (10, 10, 10)


def test_write_failed_says_which_kind_it_is() -> None:
    assert database_fault(WriteFailed("OperationalError: locked", fault=True))
    assert not database_fault(WriteFailed("IntegrityError: NOT NULL", fault=False))


def test_a_value_that_cannot_travel_becomes_an_error_row(store: Store,
                                                         remote: RemoteWrite) -> None:
    w = BatchWriter(remote, batch_size=10, max_wait_s=0.01)
    records = [record(i) for i in range(10)]
    records[4] = poisoned(4, "results", "output", lambda: None)  # pickle cannot take it
    for r in records:
        w.put(r)
    w.close()
    assert (w.written, w.unstorable) == (10, 1)
    [(error,)] = q(store, "select error from results where idx = 4")
    assert "results.output" in error
    assert counts(store) == (10, 10, 10)


def test_a_child_killed_mid_run_loses_nothing_and_writes_nothing_twice(
        store: Store, remote: RemoteWrite) -> None:
    first = [record(i) for i in range(100)]
    remote(first)
    child_of(remote).kill()
    child_of(remote).wait()
    second = [record(i) for i in range(100, 200)]
    # The batch it held when it died: what it committed stays, the rest is written here.
    remote(first[50:] + second)
    assert not remote.remote
    assert counts(store) == (200, 200, 200)
    remote([record(i) for i in range(200, 210)])  # and everything after, here too
    assert counts(store) == (210, 210, 210)


def test_a_child_that_cannot_start_leaves_the_writing_here(
        store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    r = started(store)
    assert not r.remote
    r([record(i) for i in range(5)])
    r.close()
    assert counts(store) == (5, 5, 5)


def test_the_child_outlives_a_ctrl_c_or_sigterm_to_finish_the_last_batches(
        store: Store, remote: RemoteWrite) -> None:
    proc = child_of(remote)
    remote([record(0)])  # it is up
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(0.2)
    assert proc.poll() is None
    remote([record(i) for i in range(1, 20)])
    assert remote.remote and counts(store) == (20, 20, 20)


def test_promptlab_run_stores_every_trial_through_the_child(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[RemoteWrite] = []
    through: list[bool] = []  # each write: through the child?

    class Spy(RemoteWrite):
        def __call__(self, records: Sequence[Record]) -> None:
            if self not in used:  # a small run: its child started, and ready, at once
                used.append(self)
                self.start()
                self.check_started(60)
            through.append(self.remote)
            super().__call__(records)

    monkeypatch.setattr(writer_module, "RemoteWrite", Spy)
    monkeypatch.chdir(project)
    assert main(["run", "run.batch_size=3"]) == 0
    assert len(used) == 1 and through and all(through), through
    with sqlite3.connect(project / "results.db") as conn:
        assert conn.execute("select status, count(*) from results group by status"
                            ).fetchall() == [("ok", 48)]
        assert conn.execute("select count(*) from attempts").fetchone() == (48,)


@pytest.fixture
def silent_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A `sys.executable` that starts and never says a word."""
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(silent))


@pytest.mark.usefixtures("silent_python")
def test_a_child_that_never_answers_is_given_up_and_the_writing_stays_here(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_module, "START_TIMEOUT_S", 0.5)
    r = RemoteWrite(store.url, store.write, store.stored_as)
    r.start()
    proc = r._proc
    r([record(i) for i in range(3)])  # written here while it starts
    assert proc is not None and proc.poll() is None and not r.remote
    time.sleep(0.6)
    r([record(i) for i in range(3, 5)])
    assert not r.remote and r._state == "gone"
    r.close()
    assert proc is not None and proc.poll() is not None  # not left behind
    assert counts(store) == (5, 5, 5)


def test_a_child_that_cannot_open_the_database_leaves_the_writing_here(
        store: Store, tmp_path: Path) -> None:
    r = started(store, f"sqlite:///{tmp_path}/no/such/dir/x.db")
    assert r._state == "gone"
    r([record(i) for i in range(5)])
    r.close()
    assert counts(store) == (5, 5, 5)


def test_if_the_check_after_a_lost_child_fails_it_is_made_again_before_writing(
        store: Store, remote: RemoteWrite, monkeypatch: pytest.MonkeyPatch) -> None:
    first = [record(i) for i in range(10)]
    remote(first)
    child_of(remote).kill()
    child_of(remote).wait()
    real = store.stored_as
    calls = {"n": 0}

    def flaky(records: Sequence[Record]) -> list[bool]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(records)

    monkeypatch.setattr(remote, "_stored", flaky)
    with pytest.raises(sqlite3.OperationalError):
        remote(first)  # the batch writer waits this out and tries the batch again
    remote(first)
    assert calls["n"] == 2 and counts(store) == (10, 10, 10)


def test_only_a_file_named_by_its_absolute_path_is_written_from_a_child(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///relative.db", f"sqlite:///file:{tmp_path}/u.db?uri=true"):
        with Store.open(url) as s:
            w = trial_writer(s, 50)
            assert not isinstance(w._write, RemoteWrite), url
            w.close()


def test_a_child_of_another_version_refuses_and_the_writing_stays_here(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_module, "PROTOCOL", 0)  # the parent's; the child says 1
    r = started(store)
    assert r._state == "gone"
    r([record(i) for i in range(5)])
    r.close()
    assert counts(store) == (5, 5, 5)


@pytest.mark.usefixtures("silent_python")
def test_a_run_that_ends_while_its_child_starts_does_not_wait_for_it(store: Store) -> None:
    r = RemoteWrite(store.url, store.write, store.stored_as, after_calls=1)
    r([record(0)])  # starts it, and is written here
    proc = r._proc
    t0 = time.monotonic()
    r.close()
    assert time.monotonic() - t0 < 5 and proc is not None and proc.poll() is not None
    assert counts(store) == (1, 1, 1)


def test_a_lost_child_s_batch_coming_again_split_is_still_checked(
        store: Store, remote: RemoteWrite) -> None:
    first = [record(i) for i in range(20)]
    remote(first)  # committed by the child
    child_of(remote).kill()
    child_of(remote).wait()
    remote(first[:10])  # the writer splits a refused batch: its halves come one by one
    remote(first[10:])
    assert counts(store) == (20, 20, 20)


def test_a_child_that_stops_answering_is_given_up_and_the_batch_written_here(
        store: Store, remote: RemoteWrite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_module, "ANSWER_TIMEOUT_S", 1.0)
    proc = child_of(remote)
    remote([record(0)])
    os.kill(proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    remote([record(i) for i in range(1, 10)])
    assert not remote.remote and time.monotonic() - t0 < 10
    remote.close()
    assert proc.poll() is not None  # killed, not left stopped
    assert counts(store) == (10, 10, 10)


def test_the_child_imports_nothing_from_the_working_directory_and_has_its_own_session(
        store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "random.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    r = started(store)
    try:
        assert r.remote and not marker.exists()
        assert r._proc is not None and os.getsid(r._proc.pid) != os.getsid(0)
        r([record(0)])
    finally:
        r.close()
    assert counts(store) == (1, 1, 1)


def test_a_child_at_another_schema_or_another_file_refuses(
        store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(remote_module, "SCHEMA_HEAD", "9999")  # a newer promptlab's child
    r = started(store)
    assert r._state == "gone" and "schema" in (r.refused or "")
    r.close()
    monkeypatch.undo()
    r = RemoteWrite(store.url, store.write, store.stored_as)
    path = Path(store.url.removeprefix("sqlite:///"))
    path.rename(tmp_path / "moved.db")  # another file at the path when the child opens it
    path.write_bytes(b"")
    r.start()
    r.check_started(60)
    assert r._state == "gone" and "no longer the one" in (r.refused or "")
    r.close()


def test_a_dead_child_is_no_sigpipe_for_a_host_that_set_it_to_default(tmp_path: Path) -> None:
    script = f"""
import os, signal, sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
from promptlab.store import Store
from promptlab.store.remote import RemoteWrite
from test_writer_salvage import RUN, record
with Store.open({str(tmp_path / "r.db")!r}) as s:
    s.create_run(run_id=RUN, name="t", planned=0, config={{}}, overrides=[], manifest={{}},
                 artifacts={{}})
    r = RemoteWrite(s.url, s.write, s.stored_as)
    r.start(); r.check_started(60); assert r.remote
    r([record(0)])
    r._proc.kill(); r._proc.wait(); time.sleep(0.2)
    r([record(i) for i in range(1, 2000)])  # more than a socket buffer: the write fails
    r.close()
    print(s.engine.connect().exec_driver_sql("select count(*) from results").scalar())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "2000"), done.stderr[-2000:]
