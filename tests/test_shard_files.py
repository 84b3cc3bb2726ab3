"""`run.shard_db`: each shard writes its own SQLite file (clusters without a shared
database); the launcher merges the files it can reach, and `promptlab merge` merges them by
hand: either way the run equals the unsharded run trial for trial, scores included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_scale_shards import _promptlab, _runs

from promptlab.cli.main import main

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

SHARDS = ["run.shards=4", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
          "run.shard_db='part-{shard}.db'"]


def _scored(project: Path) -> None:
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  asks:\n    type: regex\n    pattern: capital\n")


def _rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select t.idx, t.key, r.status, r.output, s.scorer, s.value from trials t join "
            "results r on r.run_id = t.run_id and r.idx = t.idx left join scores s on "
            "s.run_id = t.run_id and s.idx = t.idx order by t.idx, s.scorer").fetchall()


def test_four_shard_files_merged_by_hand_equal_the_unsharded_run(project: Path) -> None:
    _scored(project)
    done = _promptlab(project, "run", "--db", "main.db", "grid.repeats=2", "run.cache=off",
                      *SHARDS)
    assert done.returncode == 0, done.stderr
    parts = [project / f"part-{i}.db" for i in range(4)]
    [(run_id, _, planned)] = _runs(project / "main.db")
    for i, part in enumerate(parts):  # each file: the run, and its own shard's trials only
        assert _runs(part) == [(run_id, "interrupted", 96)]
        assert {r[0] % 4 for r in _rows(part)} == {i}
    plain = _promptlab(project, "run", "--db", "plain.db", "grid.repeats=2", "run.cache=off")
    assert plain.returncode == 0, plain.stderr
    whole = _rows(project / "plain.db")
    assert len(whole) == 96 and all(r[4] == "asks" for r in whole)
    # The launcher merged the files it could reach (here: all) and scored the run.
    assert _runs(project / "main.db") == [(run_id, "completed", planned)]
    assert _rows(project / "main.db") == whole
    # By hand, as on a cluster without a shared disk.
    assert main(["merge", *map(str, parts), "-o", str(project / "all.db")]) == 0
    assert _rows(project / "all.db") == whole
    assert _runs(project / "all.db") == [(run_id, "completed", planned)]
    report = _promptlab(project, "report", run_id, "--db", "all.db", "--by", "model")
    assert report.returncode == 0, report.stderr
    assert "asks" in report.stdout


def test_a_missing_shard_file_leaves_a_resumable_run(project: Path) -> None:
    done = _promptlab(project, "run", "--db", "main.db", "grid.repeats=2", "run.cache=off",
                      *SHARDS)
    assert done.returncode == 0, done.stderr
    [(run_id, _, _)] = _runs(project / "main.db")
    parts = [str(project / f"part-{i}.db") for i in range(3)]  # shard 3's host is gone
    assert main(["merge", *parts, "-o", str(project / "three.db")]) == 0
    assert _runs(project / "three.db") == [(run_id, "interrupted", 96)]
    resumed = _promptlab(project, "resume", run_id, "--db", "three.db")
    assert resumed.returncode == 0, resumed.stderr
    assert _rows(project / "three.db") == _rows(project / "main.db")


@pytest.mark.parametrize("pattern", ["part.db", "postgresql://h/db", "'part-{n}.db'"])
def test_a_shard_db_without_shard_in_it_is_one_line_and_exit_2(
        project: Path, pattern: str) -> None:
    done = _promptlab(project, "run", "--db", "main.db", "run.shards=2",
                      "hydra/launcher=joblib", f"run.shard_db={pattern}")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "run.shard_db" in done.stderr
    assert "{shard}" in done.stderr
