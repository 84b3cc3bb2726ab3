"""`run.shards` and `run.shard_db` checked before anything is sent: a bad value is one
line naming the key, exit 2, no request, no run row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_scale_shards import _promptlab, _runs

from promptlab.testing import MockServer

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def _no_run(db: Path) -> bool:
    if not db.exists():
        return True
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("select count(*) from runs").fetchone() == (0,)
        except sqlite3.OperationalError:
            return True


def _refused(project: Path, mock: MockServer, *args: str) -> str:
    done = _promptlab(project, "run", "--db", "main.db", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert mock.request_count == 0
    assert _no_run(project / "main.db")
    return done.stderr


def test_batch_with_shards_is_refused(project: Path, mock_server: MockServer) -> None:
    err = _refused(project, mock_server, "run.batch=true", "run.shards=2", *JOBLIB)
    assert "run.batch and run.shards do not combine" in err


@pytest.mark.parametrize("n", ["0", "-1"])
def test_shards_below_one_is_refused(project: Path, mock_server: MockServer, n: str) -> None:
    err = _refused(project, mock_server, f"run.shards={n}")
    assert "run.shards" in err


def test_more_shards_than_trials_is_capped(project: Path, mock_server: MockServer) -> None:
    done = _promptlab(project, "run", "--db", "main.db", "dataset.limit=1", "run.cache=off",
                      "run.shards=100", *JOBLIB)
    assert done.returncode == 0, done.stderr
    [(_, status, planned)] = _runs(project / "main.db")
    assert status == "completed" and planned < 100
    assert f"{planned} shards" in done.stderr
    launched = [ln for ln in done.stderr.splitlines() if ln.startswith("shard ")]
    assert len(launched) == planned  # one line a shard launched
    assert "run.shards=100" in done.stderr


def test_a_shard_db_that_is_the_main_db_is_refused(project: Path,
                                                   mock_server: MockServer) -> None:
    done = _promptlab(project, "run", "--db", "r-0.db", "run.shards=2", *JOBLIB,
                      "run.shard_db='r-{shard}.db'")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "run.shard_db" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert mock_server.request_count == 0
    assert _no_run(project / "r-0.db")


def test_a_shard_db_in_a_missing_directory_is_refused(project: Path,
                                                      mock_server: MockServer) -> None:
    err = _refused(project, mock_server, "run.shards=2", *JOBLIB,
                   "run.shard_db='nodir/r-{shard}.db'")
    assert "run.shard_db" in err and "nodir" in err and "--db" not in err
