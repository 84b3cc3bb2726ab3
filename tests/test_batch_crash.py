"""kill -9 between the server accepting a batch and the database hearing of it: the row
was written first (status "submitting"), and resume finds the batch on the server (OpenAI
by its metadata, Anthropic by its time and size) instead of creating a second one."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
from test_batch_resume import start
from test_batch_run import batch_project

from promptlab.testing import MockConfig, MockServer

ROWS = 50


def wait_for_creations(server: MockServer, n: int, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while server.state.counts["batches:created"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.state.counts["batches:created"] == n


@pytest.mark.parametrize("live_model", ["an", "oa"])
def test_kill_9_after_the_server_created_a_batch_resume_creates_no_second_one(
        tmp_path: Path, live_model: str) -> None:
    batched = {"an": "oa", "oa": "an"}[live_model]
    with MockServer(MockConfig(batch_delay_s=0.5, batch_create_delay_s=3.0)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=ROWS)
        db = tmp_path / "k.db"
        proc = start(root, db, "run", "run.batch=true", f"models.{live_model}.batch=false",
                     "--no-progress")
        wait_for_creations(server, 1)  # created on the server; its reply held back
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with sqlite3.connect(db) as conn:
            rows = conn.execute("select status, batch_id, request_count from batches"
                                ).fetchall()
            pending = conn.execute("select count(*) from attempts where error_kind = "
                                   "'batch_pending'").fetchone()[0]
        assert rows == [("submitting", None, ROWS)]
        assert pending == ROWS
        server.state.config.batch_create_delay_s = 0.0
        proc = start(root, db, "resume", "latest", "--no-progress")
        assert proc.wait(120) == 0, (root / "stderr.log").read_text()
        assert server.state.counts["batches:created"] == 1
        assert server.state.counts["files:uploaded"] == (1 if batched == "oa" else 0)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
        n, ok = conn.execute("select count(*), sum(status = 'ok') from results").fetchone()
        assert n == ok == 2 * ROWS
        (batch_id,), = conn.execute("select batch_id from batches").fetchall()
        assert batch_id.startswith("batch_mock" if batched == "oa" else "msgbatch_mock")
        # One attempt per batched trial: the pending one, completed by its result line.
        attempts = conn.execute(
            "select count(*), count(distinct a.idx), sum(a.error_kind is null) from attempts a "
            "join trials t using (run_id, idx) where t.model_alias = ?", (batched,)).fetchone()
        assert attempts == (ROWS, ROWS, ROWS)
