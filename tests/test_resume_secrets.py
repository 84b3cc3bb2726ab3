"""A run whose model carries a secret inline (a header listed in secret_headers) stores it
redacted; resume from the project sends the real value again, never the redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

SECRET = 'hdr-s3cr"et\\value'


def _with_secret_header(project: Path) -> None:
    path = project / "experiments/models/oa.yaml"
    path.write_text(path.read_text() + "headers:\n  x-team-key: 'hdr-s3cr\"et\\value'\n"
                    "secret_headers: [x-team-key]\n")


def test_resume_sends_the_real_secret_not_the_redaction(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _with_secret_header(project)
    monkeypatch.chdir(project)
    main(["run", "--db", "s.db", "models=[oa]", "run.max_calls=5", "run.cache=off"])
    run_id = capsys.readouterr().err.split("promptlab resume ")[1].split()[0]
    assert main(["resume", run_id, "--db", "s.db", "run.max_calls=null"]) in (0, 1)
    sent = [r["headers"].get("x-team-key") for r in mock_server.state.requests]
    assert len(sent) == 24 and set(sent) == {SECRET}
    assert SECRET not in (project / "s.db").read_bytes().decode("utf-8", "replace")


def test_resume_without_the_project_cannot_invent_the_secret(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _with_secret_header(project)
    monkeypatch.chdir(project)
    main(["run", "--db", "s.db", "models=[oa]", "run.max_calls=5", "run.cache=off"])
    run_id = capsys.readouterr().err.split("promptlab resume ")[1].split()[0]
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code = main(["resume", run_id, "--db", str(project / "s.db"), "run.max_calls=null"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "x-team-key" in err and "--experiments" in err
    assert mock_server.request_count == 5
