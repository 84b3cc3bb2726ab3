"""A run belongs to the process that runs it: `resume` refuses while that process lives,
a run whose owner died shows as interrupted, and taking a run over is atomic."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from promptlab.testing import MockServer

# 480 trials at 100 ms each, four at a time: about 12 s of sending.
SLOW = ["run.progress=false", "grid.repeats=10", "run.concurrency=4"]
PLANNED = 480
REFUSAL = re.compile(r"^error: run (\w+) is still running in pid (\d+) on (\S+) \(heartbeat "
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


def promptlab(project: Path, db: Path, *cmd: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMPTLAB_DB": str(db), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "promptlab", *cmd], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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
