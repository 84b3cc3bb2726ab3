"""A scorer that fails shows as no value in the report; the run and `score` say so in one
line per scorer: how many of its results failed, the commonest error, where to look."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]"]  # 6 trials


def boom(output: str, row: dict[str, object], params: dict[str, object]) -> float:
    """Fails on every row but France."""
    if row.get("id") != "fr":
        raise ValueError(f"no score for row {row.get('id')}")
    return 1.0


def nan(output: str, row: dict[str, object], params: dict[str, object]) -> float:
    return float("nan")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


def unprintable(output: str, row: dict[str, object], params: dict[str, object]) -> float:
    raise Unprintable


SCORERS = """
scorers:
  fine:
    type: regex
    pattern: .
  missing:
    type: exact
    field: no_such_field
  partly:
    type: python
    function: test_scorer_failures:boom
  nan:
    type: python
    function: test_scorer_failures:nan
  unprintable:
    type: python
    function: test_scorer_failures:unprintable
"""


def test_a_run_names_each_scorer_that_failed_and_why(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + SCORERS)
    assert main(["run", "--db", "results.db", "--no-progress", *ONE]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("scorer ")]
    assert len(lines) == 4, err
    assert lines[0].startswith("scorer missing failed on 6 of 6 results: KeyError:")
    assert "no_such_field" in lines[0] and "promptlab show" in lines[0]
    assert lines[1].startswith("scorer nan failed on 6 of 6 results: no value (NaN")
    assert lines[2].startswith("scorer partly failed on 4 of 6 results: ValueError: no "
                               "score for row")
    assert lines[3].startswith("scorer unprintable failed on 6 of 6 results: Unprintable "
                               "(its message could not be made)")
    assert main(["score", "latest", "--db", "results.db"]) == 0  # scoring again says it too
    assert "scorer missing failed on 6 of 6 results" in capsys.readouterr().err
