"""The database is the cache; runs resume without repeating a call; budgets stop cleanly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]"]


def cli(project: Path, *args: str) -> int:
    return main([*args[:1], "--db", str(project / "results.db"), *args[1:]])


def q(project: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(project / "results.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def test_second_identical_run_sends_zero_requests(project: Path, mock_server: MockServer) -> None:
    assert cli(project, "run") == 0
    first = mock_server.request_count
    assert first == 48
    assert cli(project, "run") == 0
    assert mock_server.request_count == first
    [(hits, sources)] = q(project, "select count(*), count(distinct cache_source) from results "
                                   "where cache_hit")
    assert hits == 48 and sources == 48
    # Reports tell fresh from cached.
    runs = [r[0] for r in q(project, "select id from runs order by created_at")]
    assert q(project, f"select sum(cache_hit) from results where run_id='{runs[0]}'") == [(0,)]


def test_repeats_are_real_samples_each_cached_separately(project: Path,
                                                         mock_server: MockServer) -> None:
    args = [*ONE, "grid.params.temperature=[0.8]", "grid.repeats=5", "dataset.limit=1"]
    assert cli(project, "run", *args) == 0
    assert mock_server.request_count == 5
    assert q(project, "select count(distinct cache_key) from trials") == [(5,)]
    assert cli(project, "run", *args, "grid.repeats=6") == 0
    assert mock_server.request_count == 6  # only the sixth sample is new


def test_errors_are_never_cached_and_cache_off_always_sends(project: Path,
                                                            mock_server: MockServer) -> None:
    (project / "data/rows.jsonl").write_text('{"id": "x", "country": "Nowhere MOCK_FAULT=400"}\n'
                                             '{"id": "y", "country": "Peru"}\n')
    args = [*ONE, "grid.params.temperature=[0]"]
    assert cli(project, "run", *args) == 1  # a trial ended in error
    assert mock_server.request_count == 2  # the 400 reply is fatal: one try
    assert cli(project, "run", *args) == 1
    assert mock_server.request_count == 3  # the error is asked again, Peru comes from cache
    assert cli(project, "run", *args, "run.cache=off") == 1
    assert mock_server.request_count == 5


def test_cache_why_names_the_fields_that_differ(project: Path, mock_server: MockServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(project, "run", *ONE, "grid.params.temperature=[0]") == 0
    assert cli(project, "run", *ONE, "grid.params.temperature=[0.5]") == 0
    capsys.readouterr()
    assert main(["cache", "why", "latest", "0", "--db", str(project / "results.db")]) == 0
    out = capsys.readouterr().out
    assert "cache miss" in out and "params: here" in out and '"temperature":0.5' in out.replace(
        " ", "")
    assert "messages" not in out.split("fields that differ:")[1]


def test_max_calls_stops_cleanly_and_resume_finishes_without_repeats(
        project: Path, mock_server: MockServer) -> None:
    assert cli(project, "run", "run.max_calls=10", "run.concurrency=2") == 1  # stopped
    [(run_id, status)] = q(project, "select id, status from runs")
    assert status == "stopped"
    assert mock_server.request_count == 10
    assert q(project, "select count(*) from results") == [(10,)]
    assert main(["resume", run_id, "run.max_calls=1000", "--db",
                 str(project / "results.db"), "--no-progress"]) == 0
    assert q(project, "select status from runs") == [("completed",)]
    assert q(project, "select count(*), count(distinct idx) from results") == [(48, 48)]
    assert mock_server.request_count == 48
    bodies = [r["body"] for r in mock_server.state.requests]
    assert len(set(bodies)) == 48


def test_max_cost_stops_the_run(project: Path, mock_server: MockServer) -> None:
    (project / "experiments/models/oa.yaml").write_text(
        (project / "experiments/models/oa.yaml").read_text()
        + "price: {input_per_mtok: 100000, output_per_mtok: 100000}\n")
    assert cli(project, "run", *ONE, "run.max_cost_usd=5", "run.concurrency=1") == 1
    [(status,)] = q(project, "select status from runs")
    [(spent, n)] = q(project, "select sum(cost_usd), count(*) from results")
    assert status == "stopped" and 5 <= spent < 5 + 3 and 0 < n < 12


def test_resume_refuses_when_the_experiment_changed(project: Path, mock_server: MockServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(project, "run", "run.max_calls=5") == 1  # stopped by the budget
    tpl = project / "templates/ask.j2"
    tpl.write_text("Which city is the capital of {{ country }}?\n")
    assert main(["resume", "latest", "--db", str(project / "results.db")]) == 2
    assert "templates/ask.j2" not in "" and "ask.j2: changed since run" in capsys.readouterr().err
    tpl.write_text("What is the capital of {{ country }}?\n")
    (project / "experiments/grid/small.yaml").write_text(
        "params:\n  temperature: [0.0, 0.9]\n  top_p: [0.5, 1.0]\n")
    assert main(["resume", "latest", "--db", str(project / "results.db")]) == 2
    assert "grid.params.temperature changed" in capsys.readouterr().err
    sent = mock_server.request_count
    assert sent == 5


def test_dry_run_counts_calls_cached_tokens_and_cost(project: Path, mock_server: MockServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(project, "run", *ONE, "grid.params.temperature=[0]") == 0
    capsys.readouterr()
    assert main(["plan", "--db", str(project / "results.db"), *ONE,
                 "grid.params.temperature=[0,1]"]) == 0
    out = capsys.readouterr().out
    total = [c.strip() for c in [line for line in out.splitlines() if "total" in line][0]
             .split("│")]
    assert total[2:5] == ["6", "3", "3"]  # calls, cached, to send
    assert "What is the capital of France?" in out
    assert mock_server.request_count == 3


def test_request_bodies_hold_no_secret_and_the_key_never_lands(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sk-test-SECRET-4242"
    # A template that (wrongly) puts the key into the prompt, and an error body echoing it.
    (project / "data/rows.jsonl").write_text(json.dumps(
        {"id": "leak", "country": f"{secret} MOCK_FAULT=500"}) + "\n")
    assert cli(project, "run", *ONE, "grid.params.temperature=[0]") == 1  # the 500s
    logs = capsys.readouterr()
    assert any(secret in r["body"] for r in mock_server.state.requests)  # it was sent ...
    for f in project.glob("results.db*"):  # ... but never stored
        assert secret.encode() not in f.read_bytes()
    assert secret not in logs.out + logs.err


def why(project: Path, run: str, trial: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["cache", "why", run, trial, "--db", str(project / "results.db")]) == 0
    return capsys.readouterr().out


def test_cache_why_ignores_later_siblings_of_the_same_run(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    args = [*ONE, "grid.params.temperature=[0]", "dataset.limit=1", "grid.repeats=2"]
    assert cli(project, "run", *args) == 0  # trial 0 is repeat 0, trial 1 repeat 1
    out = why(project, "latest", "0", capsys)
    # Repeat 1 was stored after trial 0 looked: it could not have served it.
    assert "nothing to reuse" in out and "repeat" not in out.split("cache miss:")[1], out


def test_cache_why_names_the_cause_among_requests_stored_before_the_trial(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    one = [*ONE, "dataset.limit=1"]
    assert cli(project, "run", *one, "grid.params.temperature=[0.5]") == 0
    [(first,)] = q(project, "select id from runs")
    assert cli(project, "run", *one, "grid.params.temperature=[0]", "grid.repeats=2") == 0
    out = why(project, "latest", "0", capsys)
    differ = out.split("fields that differ:")[1]
    assert f"nearest stored request: {first}:0" in out, out
    assert "params: here" in differ and "repeat" not in differ


def test_cache_why_does_not_blame_a_request_stored_later(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    one = [*ONE, "dataset.limit=1", "grid.params.temperature=[0]"]
    assert cli(project, "run", *one, "run.cache=off") == 0
    [(first,)] = q(project, "select id from runs")
    assert cli(project, "run", *one) == 0  # sends again: run.cache=off stored nothing to reuse
    out = why(project, first, "0", capsys)
    assert "nothing to reuse" in out and "identical" not in out, out


def test_cache_why_says_cache_off_when_an_identical_request_was_stored_before(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    one = [*ONE, "dataset.limit=1", "grid.params.temperature=[0]"]
    assert cli(project, "run", *one) == 0
    [(first,)] = q(project, "select id from runs")
    assert cli(project, "run", *one, "run.cache=off") == 0
    out = why(project, "latest", "0", capsys)
    assert f"identical request ({first}:0) was stored before" in out
    assert "run.cache=off" in out


def test_plan_cuts_a_huge_first_prompt(project: Path, mock_server: MockServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Found by the adversarial review: a 10 MB dataset value was printed whole by `plan`.
    (project / "data/rows.jsonl").write_text(json.dumps(
        {"id": "big", "country": "x" * 1_000_000}) + "\n")
    assert main(["plan", "--db", str(project / "results.db"), *ONE]) == 0
    out = capsys.readouterr().out
    assert len(out) < 20_000 and "more chars]" in out
    assert mock_server.request_count == 0
