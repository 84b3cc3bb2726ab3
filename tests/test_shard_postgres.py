"""`run.shards=4` through joblib into a real PostgreSQL (a throwaway cluster on 127.0.0.1,
as in test_postgres): one run, every trial once; a shard killed with SIGKILL mid-run is
finished by `resume` with nothing lost and nothing sent twice that was recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_postgres import postgres_url, pytestmark  # noqa: F401
from test_scale_shards import SHARDS, _env, _point_at, _promptlab, _trials, kill_a_worker

from promptlab.testing import MockConfig, MockServer

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def _pg_trials(url: str) -> list[tuple[int, str, str, str | None]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(  # type: ignore[misc]
                "select t.idx, t.key, r.status, r.output from trials t join results r "
                "on r.run_id = t.run_id and r.idx = t.idx order by t.idx"))]
    finally:
        engine.dispose()


def _pg_runs(url: str) -> list[tuple[str, str, int]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(  # type: ignore[misc]
                text("select id, status, planned from runs"))]
    finally:
        engine.dispose()


def test_four_shards_into_postgres_killed_one_resumed_equal_to_the_unsharded_run(
        project: Path, postgres_url: str) -> None:  # noqa: F811
    with MockServer(MockConfig(latency_ms=100)) as slow:
        _point_at(project, slow.url + "/v1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptlab", "run", "--db", postgres_url, "grid.repeats=10",
             "run.cache=off", "run.concurrency=2", *SHARDS],
            cwd=project, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill_a_worker(proc, slow, 40)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert "resume" in err
        [(run_id, status, planned)] = _pg_runs(postgres_url)
        assert status == "interrupted" and planned == 480
        before = {t[0] for t in _pg_trials(postgres_url)}
        assert 0 < len(before) < 480
        sent_before = slow.request_count
        resumed = _promptlab(project, "resume", run_id, "--db", postgres_url,
                             "run.concurrency=16")
        assert resumed.returncode == 0, resumed.stderr
        sent_by_resume = slow.request_count - sent_before
        # The same experiment unsharded, into SQLite.
        plain = _promptlab(project, "run", "--db", "plain.db", "grid.repeats=10",
                           "run.cache=off", "run.concurrency=64")
        assert plain.returncode == 0, plain.stderr
        print(f"postgres: {len(before)} of 480 recorded when a shard was killed; resume sent "
              f"{sent_by_resume}; {slow.request_count} requests in all")
    trials = _pg_trials(postgres_url)
    assert [t[0] for t in trials] == list(range(480))  # every trial exactly once
    assert all(t[2] == "ok" for t in trials)
    assert sent_by_resume == 480 - len(before)  # nothing recorded was sent again
    assert _pg_runs(postgres_url) == [(run_id, "completed", 480)]
    # Trial for trial the same keys and outputs as the unsharded run.
    assert [t[1:] for t in _trials(project / "plain.db")] == [t[1:] for t in trials]
