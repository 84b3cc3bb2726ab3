"""Reproduce from the database alone: in an empty directory, ignoring edits on disk."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from conftest import REPO

from promptlab.cli import main
from promptlab.store.database import alembic_config
from promptlab.testing import MockServer


@pytest.fixture
def original(project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Path:
    """A run with a scorer, then its template and config edited on disk, and a copy of its
    database alone in an empty directory (the working directory from then on)."""
    monkeypatch.chdir(project)
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  says_capital:\n    type: regex\n"
                                     "    pattern: capital\n")
    assert main(["run", "--db", "orig.db"]) == 0
    (project / "templates/ask.j2").write_text("Name the capital of {{ country }}.\n")
    cfg.write_text(cfg.read_text().replace("name: test-exp", "name: edited"))
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(project / "orig.db", empty / "copy.db")
    monkeypatch.chdir(empty)
    return empty / "copy.db"


def reproduce(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    capsys.readouterr()
    code = main(["reproduce", "latest", "--db", str(db), "--format", "json", *args])
    out = json.loads(capsys.readouterr().out)
    out["exit"] = code
    return out


def test_replay_sends_nothing_and_finds_no_drift(original: Path, mock_server: MockServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    sent = mock_server.request_count
    d = reproduce(original, capsys, "--check")
    assert mock_server.request_count == sent
    assert (d["exit"], d["drifted"], d["mode"]) == (0, False, "replay")
    assert d["trials"] == d["requests_identical"] == 48 and d["requests_changed"] == []
    assert d["outputs_identical"] == 48 and d["outputs_changed"] == []
    assert [s["scorer"] for s in d["scores"]] == ["says_capital"]
    with sqlite3.connect(original) as conn:
        [(parent,)] = conn.execute("select parent_run_id from runs where parent_run_id is not "
                                   "null").fetchall()
        assert parent == d["parent"]
        assert conn.execute("select name from runs").fetchall() == [("test-exp",), ("test-exp",)]
        # The replay ends with finish_run, not release: no run is left waiting for the
        # cache's index.
        assert conn.execute("select count(*) from cache_pending").fetchone() == (0,)


def test_live_reproduction_reports_exactly_the_changed_rows(
        original: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    mock_server.state.config.alter = {"Japan": "Kyoto, surely"}
    sent = mock_server.request_count
    d = reproduce(original, capsys, "--live", "--check")
    assert mock_server.request_count == sent + 48
    assert d["exit"] == 1 and d["drifted"] is True
    assert d["requests_changed"] == []  # the same requests, byte for byte
    changed = d["outputs_changed"]
    assert isinstance(changed, list)
    assert {c["row_id"] for c in changed} == {"jp"} and len(changed) == 16
    assert all(c["after"] == "Kyoto, surely" for c in changed)
    assert d["outputs_identical"] == 32
    [score] = d["scores"]
    assert score["changed"] is True and score["after"] < score["before"]


def test_reproduce_from_the_first_schema_after_upgrade(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "old.db"
    shutil.copy(REPO / "tests/fixtures/schema-0001.db", db)
    monkeypatch.chdir(tmp_path)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select version_num from alembic_version").fetchone() == ("0001",)
    d = reproduce(db, capsys, "--check")
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select version_num from alembic_version").fetchone() == (head,)
    assert head != "0001"
    assert (d["exit"], d["drifted"], d["requests_identical"]) == (0, False, d["trials"])


def test_show_config_is_rerunnable_and_export_has_every_trial(
        original: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capsys.readouterr()
    assert main(["show", "--db", str(original)]) == 0
    out = capsys.readouterr().out
    assert "test-exp (completed)" in out and "48 done" in out and "packages:" in out
    assert main(["show", "--db", str(original), "--config"]) == 0
    yaml_text = capsys.readouterr().out
    assert "models:" in yaml_text and "temperature" in yaml_text
    assert main(["export", "--db", str(original), "-o", str(tmp_path / "x.jsonl")]) == 0
    lines = [json.loads(x) for x in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert len(lines) == 48
    first = lines[0]
    assert first["request"]["body"]["messages"] and first["response"]["status"] == 200
    assert first["scores"]["says_capital"]["passed"] is True
    assert first["result"]["output"]


def test_runs_filters(original: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["runs", "--db", str(original), "--status", "completed", "--since",
                 "2000-01-01"]) == 0
    assert "test-exp" in capsys.readouterr().out
    assert main(["runs", "--db", str(original), "--until", "2000-01-01"]) == 0
    assert "test-exp" not in capsys.readouterr().out
    assert main(["runs", "--db", str(original), "--since", "yesterday"]) == 2


def test_multirun_sweep_shares_an_id_and_reports_as_one_table(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "-m", "--db", "sw.db", "models=[oa],[an]",
                 "grid.params.temperature=[0.0],[1.0]", "prompts=[plain]",
                 "grid.params.top_p=[1]"]) == 0
    with sqlite3.connect(project / "sw.db") as conn:
        sweeps = conn.execute("select sweep_id, count(*) from runs group by 1").fetchall()
    [(sweep, n)] = sweeps
    assert n == 4 and sweep.startswith("sweep-")
    capsys.readouterr()
    assert main(["report", "--db", "sw.db", "--sweep", sweep, "--by", "model,temperature",
                 "--format", "json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert [(g["model"], g["temperature"], g["calls"]) for g in groups] == [
        ("an", 0.0, 3), ("an", 1.0, 3), ("oa", 0.0, 3), ("oa", 1.0, 3)]
