"""Dataset values, model output and a server's error text are untrusted: printed to a
terminal, a control character (ESC, NUL, BEL, C1) shows as \\xNN and never acts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]", "grid.params.temperature=[0]"]
HOSTILE = "r\x1b[2J\x00\x07\x9b"


def test_a_hostile_row_id_is_shown_not_obeyed(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    (project / "data/rows.jsonl").write_text(
        json.dumps({"id": HOSTILE, "country": "Peru MOCK_FAULT=400 \x1b]0;pwned\x07"}) + "\n")
    assert main(["run", "--db", "results.db", "--no-progress", *ONE]) == 1
    main(["report", "latest", "--db", "results.db", "--by", "row"])
    main(["show", "latest", "--db", "results.db", "--trial", "0"])
    main(["cache", "why", "latest", "0", "--db", "results.db"])
    out = capsys.readouterr()
    text = out.out + out.err
    for raw in ("\x1b", "\x00", "\x07", "\x9b"):
        assert raw not in text
    assert "\\x1b[2J" in text and "\\x00" in text
