"""A real subprocess killed with SIGKILL at several points, then resumed, ends exactly like an
uninterrupted run: every trial once, request for request."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from promptlab.testing import MockServer

ARGS = ["run.progress=false", "grid.repeats=10", "run.concurrency=8"]  # 480 trials


def count_results(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("select count(*) from results").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def final_state(db: Path) -> dict[str, tuple[object, ...]]:
    """Per trial key: the last attempt's request body and the output."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select t.key, a.request_body, r.output, r.status from trials t "
            "join results r using (run_id, idx) "
            "join attempts a on a.run_id = t.run_id and a.idx = t.idx "
            "and a.number = (select max(number) from attempts b where b.run_id = t.run_id "
            "and b.idx = t.idx)").fetchall()
    return {k: (body, out, status) for k, body, out, status in rows}


def start(project: Path, db: Path, *cmd: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PROMPTLAB_DB": str(db)}
    with open(project / "stderr.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "promptlab", *cmd], cwd=project,
                                env=env, stdout=subprocess.DEVNULL, stderr=log)


def test_sigkill_at_several_points_then_resume_equals_uninterrupted(
        project: Path, mock_server: MockServer) -> None:
    model = project / "experiments/models/oa.yaml"
    model.write_text(model.read_text() + "headers:\n  x-mock-latency-ms: '40'\n")
    model = project / "experiments/models/an.yaml"
    model.write_text(model.read_text() + "headers:\n  x-mock-latency-ms: '40'\n")

    reference = project / "reference.db"
    done = start(project, reference, "run", *ARGS)
    assert done.wait(180) == 0, (project / "stderr.log").read_text()
    expected = final_state(reference)
    assert len(expected) == 480

    db = project / "killed.db"
    proc = start(project, db, "run", *ARGS)
    kills = 0
    for threshold in (60, 200, 330):
        deadline = time.monotonic() + 120
        while count_results(db) < threshold and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
        partial = count_results(db)
        assert partial < 480
        # Consistent after kill -9: every committed result has its trial and attempts.
        with sqlite3.connect(db) as conn:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
            orphans = conn.execute(
                "select count(*) from results r left join trials t using (run_id, idx) "
                "where t.idx is null").fetchone()[0]
            assert orphans == 0
        proc = start(project, db, "resume", "latest", "--no-progress")
    assert kills == 3
    assert proc.wait(180) == 0, (project / "stderr.log").read_text()

    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
        n, distinct = conn.execute("select count(*), count(distinct idx) from results").fetchone()
        assert n == distinct == 480
    got = final_state(db)
    assert got == expected


def test_ctrl_c_commits_what_finished_and_says_how_to_resume(
        project: Path, mock_server: MockServer) -> None:
    model = project / "experiments/models/oa.yaml"
    model.write_text(model.read_text() + "headers:\n  x-mock-latency-ms: '40'\n")
    db = project / "int.db"
    proc = start(project, db, "run", *ARGS)
    deadline = time.monotonic() + 120
    while count_results(db) < 80 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    log = (project / "stderr.log").read_text()
    with sqlite3.connect(db) as conn:
        [(run_id, status)] = conn.execute("select id, status from runs").fetchall()
        done = conn.execute("select count(*) from results").fetchone()[0]
        attempts = conn.execute("select count(*) from attempts").fetchone()[0]
    assert status == "interrupted" and 80 <= done < 480
    assert f"promptlab resume {run_id}" in log and "Traceback" not in log
    # Every recorded attempt reached the server; in-flight calls were cancelled, not lost
    # track of: resuming sends only what has no result.
    sent_before = mock_server.request_count
    assert sent_before >= attempts
    proc = start(project, db, "resume", run_id, "--no-progress")
    assert proc.wait(180) == 0, (project / "stderr.log").read_text()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*), count(distinct idx) from results"
                            ).fetchone() == (480, 480)
    assert mock_server.request_count - sent_before == 480 - done


def test_a_new_run_answers_from_a_run_killed_with_sigkill(
        project: Path, mock_server: MockServer) -> None:
    """The killed run never ended, so its results never went into the cache's index as
    its end: the next run's first lookup puts them there, and only the rest is sent."""
    for name in ("oa", "an"):
        model = project / f"experiments/models/{name}.yaml"
        model.write_text(model.read_text() + "headers:\n  x-mock-latency-ms: '40'\n")
    db = project / "killed.db"
    proc = start(project, db, "run", *ARGS)
    deadline = time.monotonic() + 120
    while count_results(db) < 100 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with sqlite3.connect(db) as conn:
        answered = conn.execute("select count(*) from results where status = 'ok'").fetchone()[0]
        assert conn.execute("select count(*) from cache_pending").fetchone()[0] == 1
    assert 100 <= answered < 480
    sent_before = mock_server.request_count
    proc = start(project, db, "run", *ARGS)
    assert proc.wait(180) == 0, (project / "stderr.log").read_text()
    assert mock_server.request_count - sent_before == 480 - answered
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from cache_pending").fetchone()[0] == 0
        hits = conn.execute("select count(*) from results where cache_hit").fetchone()[0]
    assert hits == answered
