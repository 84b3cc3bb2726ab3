"""promptlab run, in-process and as a subprocess, against the mock server; then the database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer, mock_reply

SECRET = "sk-test-SECRET-4242"


def run_cli(project: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(project)
    return main(["run", "--db", str(project / "results.db"), *args])


def db_rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_run_records_every_planned_trial(project: Path, mock_server: MockServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli(project, monkeypatch=monkeypatch) == 0
    db = project / "results.db"
    planned = 2 * 2 * (2 * 2) * 3  # models x prompts x grid points x rows
    [(run_id, status, n_planned)] = db_rows(db, "select id, status, planned from runs")
    assert (status, n_planned) == ("completed", planned)
    assert db_rows(db, "select count(*) from trials")[0][0] == planned
    assert db_rows(db, "select count(*) from results where status='ok'")[0][0] == planned
    assert db_rows(db, "select count(*) from attempts")[0][0] == planned
    assert mock_server.request_count == planned
    # Trials are unique by key and by position.
    assert db_rows(db, "select count(distinct key) from trials")[0][0] == planned


def test_stored_request_body_is_what_the_server_received(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli(project, monkeypatch=monkeypatch) == 0
    stored = sorted(r[0] for r in db_rows(project / "results.db",
                                          "select request_body from attempts"))
    received = sorted(r["body"] for r in mock_server.state.requests)
    assert stored == received
    outputs = db_rows(project / "results.db",
                      "select a.request_body, r.output from attempts a join results r "
                      "using (run_id, idx)")
    for body, output in outputs:
        expected = mock_reply(json.loads(body))
        assert output == expected or expected.startswith(str(output))


def test_grid_parameter_combinations_reach_the_wire(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 temperatures x 2 max_tokens x 3 rows, one model, one prompt.
    args = ["models=[oa]", "prompts=[plain]", "grid.params.temperature=[0.2,0.9]",
            "--no-progress", "grid.params.top_p=[1.0]", "+grid.params.max_tokens=[5,7]"]
    assert run_cli(project, *args, monkeypatch=monkeypatch) == 0
    bodies = [json.loads(r["body"]) for r in mock_server.state.requests]
    combos = sorted((b["temperature"], b["max_tokens"], b["messages"][-1]["content"])
                    for b in bodies)
    expected = sorted((t, m, f"What is the capital of {c}?")
                      for t in (0.2, 0.9) for m in (5, 7) for c in ("France", "Germany", "Japan"))
    assert combos == expected


def test_override_changes_what_is_sent(project: Path, mock_server: MockServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["models=[an]", "prompts=[fewshot]", "grid.params.temperature=[0.3]",
            "grid.params.top_p=[0.5]", "models.an.params.max_tokens=11",
            "prompts.fewshot.vars.tone=polite"]
    assert run_cli(project, *args, monkeypatch=monkeypatch) == 0
    bodies = [json.loads(r["body"]) for r in mock_server.state.requests]
    assert len(bodies) == 3
    for b in bodies:
        assert b["max_tokens"] == 11 and b["temperature"] == 0.3
        assert b["system"].startswith("Be polite.")
        assert [m["role"] for m in b["messages"]] == ["user", "assistant", "user"]
        assert b["messages"][1]["content"] == '{"answer": "Rome"}'
    assert mock_server.state.counts["path:/v1/messages"] == 3


def test_no_api_key_anywhere_in_the_database(project: Path, mock_server: MockServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli(project, monkeypatch=monkeypatch) == 0
    # The key did go over the wire ...
    assert mock_server.state.counts["requests"] > 0
    # ... but no byte of the database (or its WAL) holds it.
    for f in project.glob("results.db*"):
        assert SECRET.encode() not in f.read_bytes(), f
    headers = db_rows(project / "results.db",
                      "select distinct request_headers_json from attempts")
    assert any("[REDACTED]" in h[0] for h in headers)


def test_failed_calls_are_recorded_not_raised(project: Path, mock_server: MockServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "data/rows.jsonl").write_text(
        '{"id": "bad", "country": "Atlantis MOCK_FAULT=500"}\n'
        '{"id": "fine", "country": "France"}\n')
    args = ["models=[oa]", "prompts=[plain]", "grid.params.temperature=[0]",
            "grid.params.top_p=[1]"]
    assert run_cli(project, *args, monkeypatch=monkeypatch) == 1
    rows = dict(db_rows(project / "results.db",
                        "select t.row_id, r.status || ':' || r.attempts from trials t "
                        "join results r using (run_id, idx)"))
    assert rows == {"bad": "error:3", "fine": "ok:1"}
    assert db_rows(project / "results.db",
                   "select count(*) from attempts where status_code=500")[0][0] == 3


def test_subprocess_run_then_runs_and_report(project: Path, mock_server: MockServer) -> None:
    env = {**os.environ, "PROMPTLAB_DB": str(project / "out.db"),
           "PROMPTLAB_TEST_OA_KEY": SECRET}
    done = subprocess.run([sys.executable, "-m", "promptlab", "run", "run.progress=false"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "48 calls (48 ok" in done.stderr
    runs = subprocess.run([sys.executable, "-m", "promptlab", "runs"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "test-exp" in runs.stdout and "48/48" in runs.stdout
    report = subprocess.run(
        [sys.executable, "-m", "promptlab", "report", "latest", "--by", "model,temperature",
         "--format", "json"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    groups = json.loads(report.stdout)["groups"]
    assert [(g["model"], g["temperature"], g["calls"]) for g in groups] == [
        ("an", 0.0, 12), ("an", 1.0, 12), ("oa", 0.0, 12), ("oa", 1.0, 12)]
    assert mock_server.request_count == 48
