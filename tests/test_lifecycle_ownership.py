"""A run belongs to the process that runs it: `resume` refuses while that process lives,
a run whose owner died shows as interrupted, and taking a run over is atomic."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from helpers import ok_chat, prepared_for

from promptlab.errors import UserError
from promptlab.runner.session import NewRun, Session
from promptlab.store import Store
from promptlab.store.ownership import HEARTBEAT_S, STALE_AFTER_S, Owner, is_alive, new_token
from promptlab.testing import MockServer

# 480 trials at 100 ms each, four at a time: about 12 s of sending.
SLOW = ["run.progress=false", "grid.repeats=10", "run.concurrency=4"]
PLANNED = 480
REFUSAL = re.compile(r"^error: run ([\w-]+) is still running in pid (\d+) on (\S+) \(heartbeat "
                     r"\d+s ago\); wait for it or stop it$")


def slow_models(project: Path) -> None:
    for name in ("oa", "an"):
        model = project / f"experiments/models/{name}.yaml"
        model.write_text(model.read_text() + "headers:\n  x-mock-latency-ms: '100'\n")


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def promptlab(project: Path, db: Path, *cmd: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMPTLAB_DB": str(db), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "promptlab", *cmd], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _STARTED.append(proc)
    return proc


def wait_for_results(db: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 60
    while count(db, "select count(*) from results") < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)


def test_resume_of_a_running_run_is_refused_and_sends_nothing(
        project: Path, mock_server: MockServer) -> None:
    slow_models(project)
    db = project / "live.db"
    owner = promptlab(project, db, "run", *SLOW)
    wait_for_results(db, owner, 20)

    second = promptlab(project, db, "resume", "latest", "--no-progress")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 2, err
    assert owner.poll() is None, "the owner finished before the resume was tried"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    match = REFUSAL.match(lines[0])
    assert match, lines[0]
    assert int(match.group(2)) == owner.pid

    _, owner_err = owner.communicate(timeout=120)
    assert owner.returncode == 0, owner_err
    assert count(db, "select count(*) from results") == PLANNED
    assert count(db, "select count(distinct idx) from results") == PLANNED
    assert mock_server.request_count == PLANNED  # zero duplicate requests


def test_after_kill_9_the_run_shows_interrupted_and_exactly_one_resume_goes(
        project: Path, mock_server: MockServer) -> None:
    slow_models(project)
    db = project / "killed.db"
    owner = promptlab(project, db, "run", *SLOW)
    wait_for_results(db, owner, 40)
    owner.send_signal(signal.SIGKILL)
    owner.communicate(timeout=30)
    time.sleep(0.3)  # requests already on the wire reach the server's counter

    show = promptlab(project, db, "show", "latest")
    out, err = show.communicate(timeout=60)
    assert show.returncode == 0, err
    assert "(interrupted)" in out.splitlines()[0]
    runs = promptlab(project, db, "runs")
    out, err = runs.communicate(timeout=60)
    assert "interrupted" in out and "running" not in out, out

    recorded = count(db, "select count(*) from results where status = 'ok'")
    sent = mock_server.request_count
    assert 0 < recorded < PLANNED

    # Two resumes at once: one takes the run over, the other is refused.
    both = [promptlab(project, db, "resume", "latest", "--no-progress") for _ in range(2)]
    codes, errs = [], []
    for proc in both:
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        errs.append(err)
    assert sorted(codes) == [0, 2], errs
    refused = errs[codes.index(2)].strip().splitlines()
    assert len(refused) == 1 and REFUSAL.match(refused[0]), refused
    assert int(REFUSAL.match(refused[0]).group(2)) == both[codes.index(0)].pid  # type: ignore[union-attr]

    assert count(db, "select count(*) from results") == PLANNED
    assert count(db, "select count(distinct idx) from results") == PLANNED
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
    assert mock_server.request_count - sent == PLANNED - recorded


# -- the parts, in-process ---------------------------------------------------------------

NOW = datetime(2026, 11, 25, 12, 0, 0)


def owner(host: str | None = "here", pid: int | None = 4242, age_s: float | None = 1.0,
          token: str | None = "t") -> Owner:
    beat = None if age_s is None else NOW - timedelta(seconds=age_s)
    return Owner(host, pid, token, beat)


@pytest.mark.parametrize(("who", "pid_lives", "alive"), [
    (owner(), True, True),                                  # same host, pid there, fresh
    (owner(), False, False),                                # same host, pid gone (kill -9)
    (owner(age_s=STALE_AFTER_S + 1), True, False),          # pid reused or stuck: stale beat
    (owner(host="elsewhere"), False, True),                 # other host: the beat decides
    (owner(host="elsewhere", age_s=STALE_AFTER_S + 1), True, False),
    (owner(host=None, pid=None, age_s=None, token=None), True, False),  # no owner recorded
])
def test_an_owner_is_alive_while_its_pid_lives_and_its_heartbeat_is_fresh(
        who: Owner, pid_lives: bool, alive: bool) -> None:
    assert is_alive(who, NOW, host="here", pid_exists=lambda pid: pid_lives) is alive


def test_the_heartbeat_interval_is_seconds_and_staleness_three_intervals() -> None:
    assert 1 <= HEARTBEAT_S <= 10
    assert STALE_AFTER_S == 3 * HEARTBEAT_S


def _dead_run(db: Path) -> str:
    """A run row whose owner, a pid on this host, is long gone."""
    with Store.open(str(db)) as store:
        store.create_run(run_id="dead", name="x", planned=1, config={}, overrides=[],
                         manifest={}, artifacts={}, owner_token="old")
    with sqlite3.connect(db) as conn:
        conn.execute("update runs set owner_pid = 999999999")  # no such process
    return "dead"


def test_two_claims_of_the_same_dead_run_cannot_both_win(tmp_path: Path) -> None:
    db = tmp_path / "claim.db"
    run_id = _dead_run(db)
    stores = [Store.open(str(db)) for _ in range(8)]
    seen = [s.owner_of(run_id) for s in stores]
    barrier = threading.Barrier(len(stores))
    won: list[bool] = []

    def claim(store: Store, seen_owner: Owner) -> None:
        barrier.wait(10)
        won.append(store.take_over(run_id, seen_owner, new_token()))

    threads = [threading.Thread(target=claim, args=(s, o)) for s, o in zip(stores, seen,
                                                                             strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in stores:
        s.close()
    assert sorted(won) == [False] * 7 + [True]


def test_claim_refuses_a_run_whose_owner_lives(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    with Store.open(str(db)) as store:
        store.create_run(run_id="busy", name="x", planned=1, config={}, overrides=[],
                         manifest={}, artifacts={}, owner_token="mine")
        with pytest.raises(UserError, match=rf"^run busy is still running in pid {os.getpid()}"
                                            r" on \S+ \(heartbeat 0s ago\); wait for it or "
                                            "stop it$"):
            store.claim("busy")
        assert store.run("busy").status == "running"
        assert store.release("busy", "mine", "completed")
        assert store.claim("busy")  # a finished run is free to take over


def test_a_dead_owner_shows_as_interrupted_and_filters_so(tmp_path: Path) -> None:
    db = tmp_path / "status.db"
    run_id = _dead_run(db)
    with Store.open(str(db)) as store:
        store.create_run(run_id="live", name="x", planned=1, config={}, overrides=[],
                         manifest={}, artifacts={}, owner_token="live")
        assert store.run(run_id).status == "interrupted"
        assert store.run("live").status == "running"
        assert [r.id for r in store.runs(status="interrupted")] == [run_id]
        assert [r.id for r in store.runs(status="running")] == ["live"]
        assert {r.id: r.status for r in store.runs()} == {run_id: "interrupted",
                                                          "live": "running"}


def test_the_session_beats_while_it_runs_and_gives_the_run_back(project: Path) -> None:
    prepared = prepared_for(project, "models=[oa]", "prompts=[plain]", "run.concurrency=2")
    store = Store.open(str(project / "beat.db"))
    beats: set[str] = set()

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        with sqlite3.connect(project / "beat.db") as conn:
            beats.add(conn.execute("select heartbeat_at from runs").fetchone()[0])
        return ok_chat()

    client = httpx.AsyncClient(transport=httpx.MockTransport(slow))
    try:
        session = Session(store, prepared.spec, prepared.renderer, client=client,
                          heartbeat_s=0.1)
        outcome = session.run(NewRun(config=prepared.loaded.config), "beats")
    finally:
        asyncio.run(client.aclose())
    assert outcome.status == "completed"
    assert len(beats) >= 3  # 12 calls, 6 rounds of 50 ms: a beat every 100 ms
    assert store.run("beats").status == "completed"
    store.close()


def test_a_session_whose_run_was_taken_over_stops_and_leaves_the_run_alone(
        project: Path) -> None:
    prepared = prepared_for(project, "models=[oa]", "prompts=[plain]", "run.concurrency=1")
    db = project / "taken.db"
    store = Store.open(str(db))
    calls = 0
    notices: list[str] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:  # another process takes the run over (this one looked dead)
            with sqlite3.connect(db) as conn:
                conn.execute("update runs set owner_token = 'theirs', owner_pid = 1")
        await asyncio.sleep(0.05)
        return ok_chat()

    client = httpx.AsyncClient(transport=httpx.MockTransport(slow))
    try:
        session = Session(store, prepared.spec, prepared.renderer, client=client,
                          heartbeat_s=0.02, notice=lambda kind, text: notices.append(text))
        with pytest.raises(KeyboardInterrupt):
            session.run(NewRun(config=prepared.loaded.config), "taken")
    finally:
        asyncio.run(client.aclose())
    assert 2 <= calls < 12  # it stopped sending at its next heartbeat
    assert store.owner_of("taken").token == "theirs"  # its final status was not written
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchone() == ("running",)
    assert any("taken over by pid 1" in n for n in notices), notices
    store.close()
