"""`promptlab merge`: per-shard SQLite files back into one run, trial for trial."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from promptlab.cli.main import main


def _shard_file(whole: Path, out: Path, shard: int, shards: int) -> None:
    """A shard's own database: the run row and artifacts, and only its shard's trials."""
    shutil.copy(whole, out)
    with sqlite3.connect(out) as conn:
        for table in ("scores", "results", "attempts", "trials"):
            conn.execute(f"delete from {table} where idx % ? != ?", (shards, shard))
        conn.execute("update runs set status = 'running'")


def _rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select t.idx, t.key, r.status, r.output, r.latency_ms, s.scorer, s.value from "
            "trials t join results r on r.run_id = t.run_id and r.idx = t.idx left join "
            "scores s on s.run_id = t.run_id and s.idx = t.idx order by t.idx, s.scorer"
        ).fetchall()


def test_merging_four_shard_files_equals_the_unsharded_run(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--db", "whole.db", "grid.repeats=2"]) == 0
    parts = []
    for i in range(4):
        parts.append(project / f"shard-{i}.db")
        _shard_file(project / "whole.db", parts[-1], i, 4)
    capsys.readouterr()
    assert main(["merge", *map(str, parts), "-o", "all.db"]) == 0
    assert _rows(project / "all.db") == _rows(project / "whole.db")
    with sqlite3.connect(project / "all.db") as conn:
        assert conn.execute("select count(*), min(status) from runs").fetchone() == (
            1, "completed")
    # Merging again changes nothing: every row is already there and equal.
    assert main(["merge", str(parts[0]), "-o", "all.db"]) == 0
    assert _rows(project / "all.db") == _rows(project / "whole.db")


def test_a_conflicting_duplicate_is_refused_in_one_line(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--db", "a.db"]) == 0
    shutil.copy(project / "a.db", project / "b.db")
    with sqlite3.connect(project / "b.db") as conn:
        conn.execute("update results set output = 'something else' where idx = 3")
    capsys.readouterr()
    assert main(["merge", "a.db", "b.db", "-o", "all.db"]) == 2
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith("error: b.db: results ") and "differs" in line
