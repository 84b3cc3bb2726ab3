"""SIGTERM (a supervisor, `kill`, a CI timeout) stops a run like Ctrl-C: every finished
call saved, status interrupted, the resume command printed, exit 130."""

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


def promptlab(project: Path, db: Path, *cmd: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMPTLAB_DB": str(db)}
    return subprocess.Popen([sys.executable, "-m", "promptlab", *cmd], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigterm_stops_cleanly_saves_every_finished_call_and_exits_130(
        project: Path, mock_server: MockServer) -> None:
    model = project / "experiments/models/oa.yaml"
    model.write_text(model.read_text() + "headers:\n  x-mock-latency-ms: '40'\n")
    db = project / "term.db"
    proc = promptlab(project, db, "run", *ARGS)
    try:
        deadline = time.monotonic() + 120
        while count_results(db) < 80 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 130, log
    with sqlite3.connect(db) as conn:
        [(run_id, status, finished)] = conn.execute(
            "select id, status, finished_at from runs").fetchall()
        done = conn.execute("select count(*) from results").fetchone()[0]
        attempts = conn.execute("select count(*) from attempts").fetchone()[0]
        orphans = conn.execute("select count(*) from results r left join trials t "
                               "using (run_id, idx) where t.idx is null").fetchone()[0]
    assert status == "interrupted" and finished is not None and 80 <= done < 480
    assert orphans == 0
    assert f"promptlab resume {run_id}" in log and "Traceback" not in log, log
    sent_before = mock_server.request_count
    assert sent_before >= attempts  # every recorded attempt reached the server

    resume = promptlab(project, db, "resume", run_id, "--no-progress")
    _, log = resume.communicate(timeout=180)
    assert resume.returncode == 0, log
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*), count(distinct idx) from results"
                            ).fetchone() == (480, 480)
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
    assert mock_server.request_count - sent_before == 480 - done  # only what was missing
