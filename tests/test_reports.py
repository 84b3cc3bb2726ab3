from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.reports.aggregate import percentile

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def example_db(tmp_path: Path) -> Path:
    db = tmp_path / "ex.db"
    shutil.copy(REPO / "results.db.example", db)
    return db


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([1.0], 50, 1.0), ([1.0, 2.0], 50, 1.5), ([1.0, 2.0, 3.0, 4.0], 95, 3.85), ([], 50, None)])
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    result = percentile(values, q)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_report_json_groups_by_any_dimension(example_db: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", str(example_db), "--by", "model,temperature",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    keys = [(g["model"], g["temperature"]) for g in data["groups"]]
    # The example is the default experiment: Gemma 3 270M, greedy and sampled.
    assert keys == [("gemma-local", 0.0), ("gemma-local", 0.8)]
    assert sum(g["calls"] for g in data["groups"]) == 32
    assert data["scorers"] == ["correct"]
    for g in data["groups"]:
        assert g["correct_n"] == 16 and g["correct_lo"] <= g["correct"] <= g["correct_hi"]
    for g in data["groups"]:
        assert g["latency_p50_ms"] <= g["latency_p95_ms"]
        assert g["input_tokens"] > 0 and g["output_tokens"] > 0


def test_report_markdown_and_csv(example_db: Path, capsys: pytest.CaptureFixture[str],
                                 tmp_path: Path) -> None:
    assert main(["report", "--db", str(example_db), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "| model | prompt | correct | calls |" in md and md.count("| gemma-local |") == 2
    out = tmp_path / "r.csv"
    assert main(["report", "--db", str(example_db), "--by", "prompt", "--format", "csv",
                 "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["prompt"] for r in rows] == ["capital-complete", "capital-qa"]
    assert all(r["calls"] == "16" for r in rows)


def test_report_rejects_unknown_dimension(example_db: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", str(example_db), "--by", "tempreature"]) == 2
    assert "--by: 'tempreature' is not a dimension" in capsys.readouterr().err


def test_unknown_run_is_a_user_error(example_db: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "nope", "--db", str(example_db)]) == 2
    assert "run 'nope' not found" in capsys.readouterr().err


def test_help_for_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("run", "runs", "report", "mock-server"):
        with pytest.raises(SystemExit) as info:
            main([cmd, "--help"])
        assert info.value.code == 0
        assert "usage: promptlab " + cmd in capsys.readouterr().out
