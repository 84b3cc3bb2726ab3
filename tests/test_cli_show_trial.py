"""`promptlab show RUN --trial N`: one trial's whole record, as text and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlab.cli import main

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]",
       "grid.params.temperature=[0.0]"]
KEY = "sk-test-SECRET-4242"  # tests/conftest.py puts it in oa's key variable


@pytest.fixture
def run_db(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Trial 0 fails on every attempt (the mock answers 500); trial 1 is answered."""
    monkeypatch.chdir(project)
    (project / "data/rows.jsonl").write_text(
        json.dumps({"id": "bad", "country": "MOCK_FAULT=500", "expected": "x"}) + "\n"
        + json.dumps({"id": "fr", "country": "France", "expected": "France"}) + "\n")
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  named:\n    type: contains\n")
    assert main(["run", "--db", "t.db", *ONE]) == 1  # trial 0 ended in error
    return project / "t.db"


def show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["show", *args, "--db", "t.db"]) == 0
    out = capsys.readouterr()
    assert KEY not in out.out + out.err
    return out.out


def test_show_trial_prints_every_attempt_of_a_failed_trial(
        run_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = show(capsys, "latest", "--trial", "0")
    assert "trial 0" in out and "model oa" in out and "row bad" in out
    for n in (1, 2, 3):  # run.max_attempts=3 in the project
        assert f"attempt {n}" in out
    assert out.count("-> 500") == 3 and "transient" in out
    assert "/v1/chat/completions" in out
    assert "authorization: [REDACTED]" in out  # the key is stored redacted
    assert '"model": "mock-small"' in out  # the request body
    assert "internal error" in out  # the response body
    assert "result: error" in out


def test_show_trial_as_json(run_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads(show(capsys, "latest", "--trial", "0", "--format", "json"))
    assert record["trial"]["idx"] == 0 and record["trial"]["row_id"] == "bad"
    attempts = record["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    first = attempts[0]
    assert first["request"]["url"].endswith("/v1/chat/completions")
    assert first["request"]["headers"]["authorization"] == "[REDACTED]"
    assert first["request"]["body"]["model"] == "mock-small"  # parsed JSON
    assert first["response"]["status"] == 500
    assert first["response"]["body"]["error"]["message"] == "internal error"
    assert first["error_kind"] == "transient" and first["duration_ms"] >= 0
    assert record["result"]["status"] == "error" and record["result"]["attempts"] == 3
    assert record["scores"] == {}  # a failed trial is not scored


def test_show_trial_of_an_answered_trial_has_scores_with_detail(
        run_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = json.loads(show(capsys, "latest", "--trial", "1", "--format", "json"))
    assert record["result"]["status"] == "ok" and "France" in record["result"]["output"]
    assert record["result"]["latency_ms"] > 0
    assert record["scores"]["named"] == {"value": 1.0, "passed": True,
                                         "detail": {"expected": ["france"]}}
    assert record["result"]["cache_hit"] is False
    text = show(capsys, "latest", "--trial", "1")
    assert "named: 1 passed" in text and '"expected": ["france"]' in text


def test_show_trial_names_its_cache_source(run_db: Path, project: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    first = json.loads(show(capsys, "latest", "--trial", "1", "--format", "json"))
    assert main(["run", "--db", "t.db", *ONE]) == 1  # trial 0 fails again: errors are never cached
    record = json.loads(show(capsys, "latest", "--trial", "1", "--format", "json"))
    source = f"{first['trial']['run_id']}:1"
    assert record["result"]["cache_hit"] is True
    assert record["result"]["cache_source"] == source and record["attempts"] == []
    assert f"from the cache: {source}" in show(capsys, "latest", "--trial", "1")


def test_show_trial_unknown_is_a_user_error(run_db: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "latest", "--trial", "99", "--db", "t.db"]) == 2
    assert "trial '99' not found" in capsys.readouterr().err
