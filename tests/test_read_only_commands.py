"""Commands that only read never change the database they read (results.db.example)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import promptlab
from promptlab.cli import main

REPO = Path(__file__).resolve().parent.parent


def _state(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", [
    ["runs"], ["report"], ["report", "--format", "json"], ["show"], ["show", "--config"],
    ["export"], ["cache", "why", "latest", "0"]])
def test_reading_commands_leave_the_example_byte_for_byte(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy2(REPO / "results.db.example", folder / "example.db")
    before = _state(folder)
    assert main([*command, "--db", str(folder / "example.db")]) == 0
    assert _state(folder) == before  # no -wal, no -shm, no new bytes, same mtime
    assert capsys.readouterr().out


def test_load_results_reads_without_writing(tmp_path: Path) -> None:
    shutil.copy2(REPO / "results.db.example", tmp_path / "example.db")
    before = _state(tmp_path)
    assert len(promptlab.load_results(str(tmp_path / "example.db"))) > 0
    assert _state(tmp_path) == before
