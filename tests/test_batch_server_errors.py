"""A batch API that keeps failing (HTTP 500 on upload and create, past its retries) stops
the run with one line naming the call and how to finish, exit 1 (calls were sent: not a
user error's 2); the run is kept, and resume finishes it once the server answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_batch_lost import failing
from test_batch_run import batch_project

from promptlab.cli.main import main
from promptlab.testing import MockConfig, MockServer


def test_a_failing_batch_api_stops_the_run_resumably(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    good = MockServer(MockConfig(batch_delay_s=0.2)).start()
    port = good.port
    good.stop()
    bad = failing(port)
    try:
        root = batch_project(tmp_path / "p", f"http://127.0.0.1:{port}/v1", rows=2)
        monkeypatch.chdir(root)
        monkeypatch.setenv("PROMPTLAB_TEST_OA_KEY", "sk-test")
        monkeypatch.setenv("PROMPTLAB_BATCH_POLL_S", "0.1,0.3")
        db = str(tmp_path / "b.db")
        assert main(["run", "--db", db, "run.batch=true", "--no-progress"]) == 1
    finally:
        bad.stop()
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "HTTP 500" in lines[0], err
    assert "finish with: promptlab resume" in lines[0] and "Traceback" not in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("failed",)]
    good = MockServer(MockConfig(batch_delay_s=0.2), port=port).start()
    try:
        assert main(["resume", "latest", "--db", db, "--no-progress"]) == 0
    finally:
        good.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
        assert conn.execute("select count(*), sum(status = 'ok') from results").fetchone()[0] > 0
