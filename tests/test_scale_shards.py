"""`run.shards=N`: one run's trials over N joblib workers, into one database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promptlab.testing import MockConfig, MockServer

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

SHARDS = ["run.shards=4", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4"]


def _env() -> dict[str, str]:
    return {**os.environ, "PROMPTLAB_TEST_OA_KEY": "sk-test"}


def _promptlab(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptlab", *args], cwd=project, env=_env(),
                          capture_output=True, text=True, timeout=180)


def _point_at(project: Path, url: str) -> None:
    for name in ("oa", "an"):
        f = project / f"experiments/models/{name}.yaml"
        f.write_text("\n".join(f"base_url: {url}" if line.startswith("base_url:") else line
                               for line in f.read_text().splitlines()) + "\n")


def _trials(db: Path) -> list[tuple[int, str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select t.idx, t.key, r.status, r.output from trials t join results r "
            "on r.run_id = t.run_id and r.idx = t.idx order by t.idx").fetchall()


def _runs(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select id, status, planned from runs").fetchall()


def test_four_shards_write_one_run_with_every_trial_once(project: Path) -> None:
    done = _promptlab(project, "run", "--db", "one.db", "grid.repeats=5", "run.cache=off",
                      *SHARDS)
    assert done.returncode == 0, done.stderr
    [(run_id, status, planned)] = _runs(project / "one.db")
    assert status == "completed" and planned == 240
    trials = _trials(project / "one.db")
    assert [t[0] for t in trials] == list(range(240))
    assert all(t[2] == "ok" for t in trials)
    assert done.stderr.count("shard ") >= 4
    # The same experiment unsharded: trial for trial the same keys and outputs.
    plain = _promptlab(project, "run", "--db", "plain.db", "grid.repeats=5", "run.cache=off")
    assert plain.returncode == 0, plain.stderr
    assert [t[1:] for t in _trials(project / "plain.db")] == [t[1:] for t in trials]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = _children(p)
        except OSError:
            continue
        found += kids
        todo += kids
    return found


def kill_a_worker(proc: subprocess.Popen[str], mock: MockServer, after_requests: int) -> None:
    """SIGKILL one of the launcher's workers (a loky process, not promptlab's own command)
    once the mock has seen `after_requests` requests; within 60 s."""
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if mock.request_count >= after_requests:
            workers = [p for p in _descendants(proc.pid)
                       if "promptlab" not in Path(f"/proc/{p}/cmdline").read_text()]
            if workers:
                break
    assert workers, "no launcher workers seen"
    os.kill(workers[-1], signal.SIGKILL)


def test_a_killed_shard_is_finished_by_resume_with_nothing_lost_or_doubled(
        project: Path) -> None:
    with MockServer(MockConfig(latency_ms=100)) as slow:
        _point_at(project, slow.url + "/v1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptlab", "run", "--db", "k.db", "grid.repeats=10",
             "run.cache=off", "run.concurrency=2", *SHARDS],
            cwd=project, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill_a_worker(proc, slow, 40)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        [(run_id, status, planned)] = _runs(project / "k.db")
        assert planned == 480
        before = {t[0] for t in _trials(project / "k.db")}
        assert 0 < len(before) < 480
        sent_before = slow.request_count
        resumed = _promptlab(project, "resume", run_id, "--db", "k.db", "run.concurrency=16")
        assert resumed.returncode == 0, resumed.stderr
        sent_by_resume = slow.request_count - sent_before
    trials = _trials(project / "k.db")
    assert [t[0] for t in trials] == list(range(480))
    assert all(t[2] == "ok" for t in trials)
    assert sent_by_resume == 480 - len(before)
    print(f"killed shard: {len(before)} of 480 recorded before resume; resume sent "
          f"{sent_by_resume}")
