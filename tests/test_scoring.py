"""Scorers on every result, re-scoring without model calls, the judge, and paired compare."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.scoring import build_scorer, parse_judgement
from promptlab.testing import MockServer

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]"]


@pytest.mark.parametrize(("cfg", "output", "row", "value", "passed"), [
    ({"type": "exact"}, " Paris ", {"expected": "paris"}, 1.0, True),
    ({"type": "exact", "case_sensitive": True}, "paris", {"expected": "Paris"}, 0.0, False),
    ({"type": "contains"}, "It is Paris.", {"expected": ["Lyon", "Paris"]}, 1.0, True),
    ({"type": "contains", "field": "city"}, "Rome", {"city": "Paris"}, 0.0, False),
    ({"type": "regex", "pattern": r"\b\d{4}\b"}, "in 1889", {}, 1.0, True),
    ({"type": "json"}, '```json\n{"a": 1}\n```', {}, 1.0, True),
    ({"type": "json"}, '{"a": ', {}, 0.0, False),
    ({"type": "json_schema", "schema": {"type": "object", "required": ["answer"]}},
     '{"answer": "x"}', {}, 1.0, True),
    ({"type": "json_schema", "schema": {"type": "object", "required": ["answer"]}},
     '{"other": 1}', {}, 0.0, False),
    ({"type": "python", "function": "helpers:known_outcome"}, "model=a", {"wins": ["a"]},
     1.0, True),
])
def test_scorers(cfg: dict[str, object], output: str, row: dict[str, object], value: float,
                 passed: bool) -> None:
    s = build_scorer("s", cfg, "here")(output, row, {})
    assert (s.value, s.passed) == (value, passed)


def test_a_scorer_that_raises_is_recorded_not_a_crash() -> None:
    s = build_scorer("s", {"type": "contains", "field": "nope"}, "here")("x", {}, {})
    assert s.value is None and "nope" in s.detail["error"]


@pytest.mark.parametrize("cfg", [{"type": "regex", "pattern": "("}, {"type": "fuzzy"},
                                 {"type": "python", "function": "no_such_module:f"},
                                 {"type": "judge", "model": "x"}])
def test_bad_scorer_config_is_a_user_error(cfg: dict[str, object]) -> None:
    with pytest.raises(UserError):
        build_scorer("s", cfg, "here")


@pytest.mark.parametrize(("text", "value", "passed"), [
    ("Verdict: PASS", 1.0, True), ("fail, because", 0.0, False),
    ("Score: 7", 7.0, True), ("score = 3.5", 3.5, False), ("no idea", None, None)])
def test_judge_replies(text: str, value: float | None, passed: bool | None) -> None:
    s = parse_judgement(text, threshold=5)
    assert (s.value, s.passed) == (value, passed)


def with_rows(project: Path, rows: list[dict[str, object]]) -> None:
    (project / "data/rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def add_scorers(project: Path, text: str) -> None:
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + text)


def test_scores_are_stored_and_rescoring_calls_no_model(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    add_scorers(project, "scorers:\n  asks:\n    type: regex\n    pattern: capital\n")
    assert main(["run", "--db", "s.db", *ONE]) == 0
    sent = mock_server.request_count
    with sqlite3.connect(project / "s.db") as conn:
        assert conn.execute("select count(*), sum(passed) from scores").fetchone() == (6, 6)
    add_scorers(project, "  france:\n    type: regex\n    pattern: France\n")
    capsys.readouterr()
    assert main(["score", "--db", "s.db"]) == 0
    assert mock_server.request_count == sent  # re-scoring sends nothing
    with sqlite3.connect(project / "s.db") as conn:
        rows = dict(conn.execute("select scorer, sum(passed) from scores group by scorer"))
    assert rows == {"asks": 6, "france": 2}  # two France trials (two temperatures)
    assert "france" in capsys.readouterr().out


def test_llm_judge_calls_are_recorded_as_a_child_run(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    (project / "templates/judge.j2").write_text(
        "{{ 'PASS' if expected in output else 'FAIL' }}: {{ output }}")
    with_rows(project, [{"id": "fr", "country": "France", "expected": "France"},
                        {"id": "de", "country": "Germany", "expected": "Lyon"}])
    add_scorers(project, "scorers:\n  judged:\n    type: judge\n    model: an\n"
                         "    template: judge.j2\n")
    assert main(["run", "--db", "j.db", *ONE, "grid.params.temperature=[0]"]) == 0
    with sqlite3.connect(project / "j.db") as conn:
        scores = dict(conn.execute("select t.row_id, s.passed from scores s join trials t "
                                   "using (run_id, idx)"))
        runs = conn.execute("select id, name, parent_run_id from runs order by created_at"
                            ).fetchall()
        judge_calls = conn.execute("select count(*) from attempts a join runs r on "
                                   "a.run_id = r.id where r.parent_run_id is not null"
                                   ).fetchone()[0]
    assert scores == {"fr": 1, "de": 0}
    assert len(runs) == 2 and runs[1][2] == runs[0][0] and ":judge:judged" in runs[1][1]
    assert judge_calls == 2
    assert mock_server.state.counts["path:/v1/messages"] == 2  # the judge is model 'an'


def run_temperatures(project: Path, rows: list[dict[str, object]]) -> None:
    with_rows(project, rows)
    add_scorers(project, "scorers:\n  known:\n    type: python\n"
                         "    function: helpers:pass_at_temperature\n")
    assert main(["run", "--db", "c.db", *ONE, "grid.params.temperature=[0.0,1.0]"]) == 0


def test_identical_groups_say_no_difference(project: Path, mock_server: MockServer,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    rows = [{"id": f"r{i}", "country": f"C{i}", "pass_at": [0.0, 1.0] if i < 14 else []}
            for i in range(20)]
    run_temperatures(project, rows)
    capsys.readouterr()
    assert main(["compare", "latest", "--db", "c.db", "--between", "temperature=0",
                 "--and", "temperature=1", "--format", "json"]) == 0
    [c] = json.loads(capsys.readouterr().out)["comparisons"]
    assert (c["pairs"], c["wins"], c["ties"], c["losses"]) == (20, 0, 20, 0)
    assert c["verdict"].startswith("no difference")


def test_a_clear_difference_is_detected(project: Path, mock_server: MockServer,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    rows = [{"id": f"r{i}", "country": f"C{i}",
             "pass_at": [0.0] if i < 15 else ([0.0, 1.0] if i < 18 else [])} for i in range(20)]
    run_temperatures(project, rows)
    capsys.readouterr()
    assert main(["compare", "latest", "--db", "c.db", "--between", "temperature=0",
                 "--and", "temperature=1", "--format", "json"]) == 0
    [c] = json.loads(capsys.readouterr().out)["comparisons"]
    assert (c["wins"], c["ties"], c["losses"]) == (15, 5, 0)
    assert c["p_value"] == pytest.approx(2 * 0.5 ** 15)
    assert c["a_value"] == 0.9 and c["b_value"] == 0.15
    assert c["verdict"].startswith("A is better")
    assert len(c["flipped"]) == 15 and all(f["a"] == 1 and f["b"] == 0 for f in c["flipped"])
    # The table form says the same in one screen.
    assert main(["compare", "latest", "--db", "c.db", "--between", "temperature=0",
                 "--and", "temperature=1"]) == 0
    out = capsys.readouterr().out
    assert "A is better" in out and "rows that flipped" in out


def test_small_samples_are_called_too_small(project: Path, mock_server: MockServer,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    rows = [{"id": f"r{i}", "country": f"C{i}", "pass_at": [0.0] if i < 3 else []}
            for i in range(12)]
    run_temperatures(project, rows)
    capsys.readouterr()
    assert main(["compare", "latest", "--db", "c.db", "--between", "temperature=0",
                 "--and", "temperature=1", "--format", "json"]) == 0
    [c] = json.loads(capsys.readouterr().out)["comparisons"]
    assert c["verdict"].startswith("too small to tell")


def test_load_results_gives_params_and_scores_as_columns(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import promptlab

    monkeypatch.chdir(project)
    rows = [{"id": f"r{i}", "country": f"C{i}", "pass_at": [0.0]} for i in range(3)]
    run_temperatures(project, rows)
    results = promptlab.load_results(str(project / "c.db"))
    assert len(results) == 6
    assert {r["temperature"] for r in results} == {0.0, 1.0}
    df = results.to_pandas()
    assert df.groupby("temperature")["score.known"].mean().to_dict() == {0.0: 1.0, 1.0: 0.0}
    assert "row.country" in df.columns
