"""Odd input found by an adversarial review: each is one line, exit 2, nothing sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("key", ["sk-abc\r", "sk-abc\nInjected: 1", "sk-\x01ctrl", " sk-abc"])
def test_an_api_key_with_a_line_break_or_control_character_is_one_line(
        key: str, project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("PROMPTLAB_TEST_OA_KEY", key)
    assert main(["run", "--db", "k.db"]) == 2
    err = _one_line(capsys)
    assert "PROMPTLAB_TEST_OA_KEY" in err and "sk-" not in err  # never the key itself
    assert mock_server.request_count == 0


def test_a_lone_surrogate_escape_in_jsonl_names_the_line(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    with open(project / "data/rows.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "\\ud800", "country": "H"}\n')
    assert main(["plan", "--db", "k.db"]) == 2
    assert "rows.jsonl:4" in _one_line(capsys)
    assert main(["run", "--db", "k.db"]) == 2
    assert mock_server.request_count == 0


def test_a_paired_surrogate_escape_is_a_real_character(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    with open(project / "data/rows.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "emoji", "country": "\\ud83d\\ude00"}\n')
    assert main(["run", "--db", "k.db", "models=[an]", "prompts=[plain]"]) == 0


def test_an_unclosed_ipv6_base_url_is_one_line(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--db", "k.db", 'models.oa.base_url="http://[::1"']) == 2
    assert "base_url" in _one_line(capsys)
    assert mock_server.request_count == 0
