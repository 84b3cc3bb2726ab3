"""kill -9 while a batch run polls, then resume: the same batches are polled, none is
created twice, every result arrives; `batches` lists them and `cancel` cancels them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_batch_run import batch_project

from promptlab.cli.main import main
from promptlab.testing import MockConfig, MockServer

ROWS = 200


def start(root: Path, db: Path, *cmd: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PROMPTLAB_DB": str(db), "PROMPTLAB_BATCH_POLL_S": "0.1,0.3"}
    with open(root / "stderr.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "promptlab", *cmd], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def batch_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("select count(*) from batches where batch_id is not null"
                                    ).fetchone()[0])
    except sqlite3.Error:
        return 0


def wait_for_batches(db: Path, n: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while batch_rows(db) < n and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert batch_rows(db) == n


def test_kill_9_while_polling_then_resume_submits_nothing_twice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with MockServer(MockConfig(batch_delay_s=3.0)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=ROWS)
        db = tmp_path / "k.db"
        proc = start(root, db, "run", "run.batch=true", "--no-progress")
        wait_for_batches(db, 2, proc)
        time.sleep(0.3)  # polling
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert server.state.counts["batches:created"] == 2
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from results").fetchone() == (0,)
            ids = [r[0] for r in conn.execute("select batch_id from batches")]
        assert main(["batches", "latest", "--db", str(db)]) == 0
        shown = capsys.readouterr().out
        assert all(i in shown for i in ids)
        proc = start(root, db, "resume", "latest", "--no-progress")
        assert proc.wait(120) == 0, (root / "stderr.log").read_text()
        assert server.state.counts["batches:created"] == 2
        assert server.state.counts["files:uploaded"] == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
        n, distinct, ok = conn.execute("select count(*), count(distinct idx), "
                                       "sum(status = 'ok') from results").fetchone()
        assert n == distinct == ok == 2 * ROWS
        assert [r[0] for r in conn.execute("select batch_id from batches")] == ids


def test_cancel_cancels_the_live_batches_on_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MockServer(MockConfig(batch_delay_s=30.0)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=5)
        db = tmp_path / "c.db"
        proc = start(root, db, "run", "run.batch=true", "--no-progress")
        wait_for_batches(db, 2, proc)
        monkeypatch.chdir(root)
        assert main(["cancel", "latest", "--db", str(db)]) == 0
        assert server.state.counts["batches:cancelled"] == 2
        # The running process reads the cancelled batches and ends: its trials are errors
        # (exit code 1), which resume sends again.
        assert proc.wait(60) == 1, (root / "stderr.log").read_text()
    with sqlite3.connect(db) as conn:
        kinds = {r[0] for r in conn.execute("select error_kind from results")}
        assert kinds == {"batch_canceled"}
