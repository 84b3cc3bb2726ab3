"""A batch the server has forgotten (404 on poll or on its results) is lost: a terminal
status with its reason, its items sent again like expired ones up to run.max_attempts, the
run resumable; a failing resume never loses the results already recorded."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from aiohttp import web
from test_batch_resume import batch_rows, start, wait_for_batches
from test_batch_run import batch_project

from promptlab.cli.main import main
from promptlab.testing import MockConfig, MockServer

ROWS = 6


def restart(server: MockServer, delay: float = 0.3) -> MockServer:
    """The mock on the same port again, its batches forgotten."""
    port = server.port
    server.stop()
    return MockServer(MockConfig(batch_delay_s=delay), port=port).start()


def failing(port: int) -> MockServer:
    """A server on the port that answers every request with HTTP 500."""
    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "overloaded"}}, status=500)

    bad = MockServer(port=port)
    bad.app = web.Application()
    bad.app.router.add_route("*", "/{path:.*}", fail)
    return bad.start()


def wait_rows(db: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while batch_rows(db) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert batch_rows(db) >= n


def test_a_batch_the_server_forgot_is_lost_and_its_items_sent_again(tmp_path: Path) -> None:
    server = MockServer(MockConfig(batch_delay_s=30.0)).start()
    try:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=ROWS)
        db = tmp_path / "l.db"
        proc = start(root, db, "run", "run.batch=true", "--no-progress")
        wait_for_batches(db, 2, proc)
        server = restart(server)
        assert proc.wait(120) == 0, (root / "stderr.log").read_text()
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchall() == [("completed",)]
        n, ok = conn.execute("select count(*), sum(status = 'ok') from results").fetchone()
        assert n == ok == 2 * ROWS
        lost = conn.execute("select status, error, ingested_at is not null from batches "
                            "where round = 1").fetchall()
        assert len(lost) == 2
        assert all(s == "lost" and "404" in e and done for s, e, done in lost)


def cancelled_run(tmp_path: Path, server: MockServer, name: str,
                  monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A batch run whose two batches were sent and then cancelled (exit 1): its project
    root and database; the working directory is the project."""
    root = batch_project(tmp_path / "p", server.url + "/v1", rows=ROWS)
    db = tmp_path / name
    proc = start(root, db, "run", "run.batch=true", "--no-progress")
    wait_for_batches(db, 2, proc)
    monkeypatch.chdir(root)
    assert main(["cancel", "latest", "--db", str(db)]) == 0
    assert proc.wait(60) == 1, (root / "stderr.log").read_text()
    return root, db


def test_lost_on_resume_after_cancel_keeps_the_run_resumable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = MockServer(MockConfig(batch_delay_s=30.0)).start()
    try:
        root, db = cancelled_run(tmp_path, server, "c.db", monkeypatch)
        proc = start(root, db, "resume", "latest", "--no-progress")
        wait_rows(db, 4)
        server = restart(server, 30.0)
        code = proc.wait(120)
        err = (root / "stderr.log").read_text()
        assert code == 1, err  # errors recorded (attempts used up), not a user error
        assert "HTTP 404" not in err.splitlines()[-1]
        with sqlite3.connect(db) as conn:
            n, = conn.execute("select count(*) from results").fetchone()
            assert n == 2 * ROWS
            kinds = {r[0] for r in conn.execute("select status from batches where round = 1"
                                                " and number > 2")}
            assert kinds == {"lost"}
        # Cancel skips the lost batches; the run resumes (and completes) on the new mock.
        assert main(["cancel", "latest", "--db", str(db)]) == 0
        server = restart(server, 0.2)
        proc = start(root, db, "resume", "latest", "--no-progress")
        assert proc.wait(120) == 0, (root / "stderr.log").read_text()
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        n, ok = conn.execute("select count(*), sum(status = 'ok') from results").fetchone()
        assert n == ok == 2 * ROWS


def test_a_failing_resume_keeps_the_error_results_already_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MockServer(MockConfig(batch_delay_s=30.0)) as server:
        root, db = cancelled_run(tmp_path, server, "f.db", monkeypatch)
    # The server is gone: the resume fails, and the 2 * ROWS error results stay.
    proc = start(root, db, "resume", "latest", "--no-progress")
    assert proc.wait(120) != 0
    with sqlite3.connect(db) as conn:
        n, = conn.execute("select count(*) from results").fetchone()
        assert n == 2 * ROWS


def test_server_errors_on_poll_are_retried_not_a_user_error(tmp_path: Path) -> None:
    server = MockServer(MockConfig(batch_delay_s=30.0)).start()
    try:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=ROWS)
        db = tmp_path / "e.db"
        proc = start(root, db, "run", "run.batch=true", "--no-progress")
        wait_for_batches(db, 2, proc)
        port = server.port
        server.stop()
        server = failing(port)
        time.sleep(9)  # longer than one poll's own retries
        assert proc.poll() is None, (root / "stderr.log").read_text()
        with sqlite3.connect(db) as conn:
            errors = [r[0] for r in conn.execute("select error from batches")]
        assert any(e and "HTTP 500" in e for e in errors), errors
        server.stop()
        server = MockServer(MockConfig(batch_delay_s=0.2), port=port).start()
        assert proc.wait(120) == 0, (root / "stderr.log").read_text()
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        n, ok = conn.execute("select count(*), sum(status = 'ok') from results").fetchone()
        assert n == ok == 2 * ROWS
