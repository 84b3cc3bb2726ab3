"""`resume` sends every trial without an ok result: also the errors and skips of a run that
completed; "nothing to resume" only when every trial is ok."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]"]  # 6 trials


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def q(project: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(project / "results.db") as conn:
        return conn.execute(sql).fetchall()


def resume() -> int:
    return main(["resume", "latest", "--db", "results.db", "--no-progress"])


def test_resume_of_a_completed_run_sends_exactly_its_skipped_and_failed_trials(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    mock_server.state.config.api_key = "sk-right"
    monkeypatch.setenv("PROMPTLAB_TEST_OA_KEY", "sk-wrong")
    assert main(["run", "--db", "results.db", *ONE, "run.concurrency=1"]) == 1
    assert q(project, "select status from runs") == [("completed",)]
    assert q(project, "select status, count(*) from results group by status order by 1") == [
        ("error", 1), ("skipped", 5)]
    assert mock_server.request_count == 1  # the 401 stopped the endpoint
    assert "6 trials without an ok result" in capsys.readouterr().err

    monkeypatch.setenv("PROMPTLAB_TEST_OA_KEY", "sk-right")
    assert resume() == 0
    assert mock_server.request_count == 1 + 6  # exactly the six, once each
    assert len({r["body"] for r in mock_server.state.requests[1:]}) == 6
    assert q(project, "select status, count(*) from results group by status") == [("ok", 6)]
    assert q(project, "select status from runs") == [("completed",)]

    capsys.readouterr()
    assert resume() == 0
    assert "nothing to resume" in capsys.readouterr().err
    assert mock_server.request_count == 7


def test_resume_sends_an_errored_trial_again_and_only_it(
        project: Path, mock_server: MockServer) -> None:
    (project / "data/rows.jsonl").write_text('{"id": "x", "country": "Nowhere MOCK_FAULT=400"}\n'
                                             '{"id": "y", "country": "Peru"}\n')
    args = [*ONE, "grid.params.temperature=[0]"]  # 2 trials
    assert main(["run", "--db", "results.db", *args]) == 1
    assert mock_server.request_count == 2
    assert resume() == 1  # still an error: exit 1 again
    assert mock_server.request_count == 3  # the 400 trial, once more (a 400 is not retried)
    assert q(project, "select number from attempts a join trials t using (run_id, idx) "
                      "where t.row_id = 'x' order by number") == [(1,), (2,)]
    assert q(project, "select count(*) from results") == [(2,)]


def test_a_resume_says_what_it_spent_and_the_runs_total(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    priced = [*ONE, "+models.oa.price.input_per_mtok=1000000", "run.concurrency=1"]
    assert main(["run", "--db", "results.db", *priced, "run.max_calls=2"]) == 1
    first = sum(c for (c,) in q(project, "select cost_usd from results where status = 'ok'"))
    assert first > 0
    capsys.readouterr()
    assert main(["resume", "latest", "--db", "results.db", "--no-progress",
                 "run.max_calls=10"]) == 0
    total = sum(c for (c,) in q(project, "select cost_usd from results where status = 'ok'"))
    err = capsys.readouterr().err
    assert f"${total - first:.4f} (the run's total ${total:.4f})" in err, err
