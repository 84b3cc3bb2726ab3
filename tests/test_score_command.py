"""`promptlab score` finds the experiments directory however it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1.0]"]


def test_score_accepts_a_relative_experiments_directory(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  asks:\n    type: regex\n    pattern: capital\n")
    assert main(["run", "--db", "s.db", *ONE]) == 0
    sent = mock_server.request_count
    monkeypatch.chdir(project.parent)
    capsys.readouterr()
    assert main(["score", "--db", "proj/s.db", "--experiments", "proj/experiments"]) == 0
    assert "6 scores written" in capsys.readouterr().err
    assert mock_server.request_count == sent
