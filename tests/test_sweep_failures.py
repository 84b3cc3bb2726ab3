"""A failing job does not stop the others: the end of a sweep lists every job's status,
and each failure in one line with its reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_scale_shards import _env, _promptlab, kill_a_worker

from promptlab.store import Store
from promptlab.testing import MockConfig, MockServer

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def _point(project: Path, name: str, url: str) -> None:
    f = project / f"experiments/models/{name}.yaml"
    f.write_text("\n".join(f"base_url: {url}" if line.startswith("base_url:") else line
                           for line in f.read_text().splitlines()) + "\n")


def test_a_job_whose_model_refuses_the_key_does_not_stop_the_other(project: Path) -> None:
    with MockServer(MockConfig(api_key="sk-another-key")) as locked:
        _point(project, "oa", locked.url + "/v1")  # 401 for every call of this job
        done = _promptlab(project, "run", "-m", "--db", "f.db", "models=[oa],[an]",
                          "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert done.returncode == 1, done.stderr
    with Store.open(str(project / "f.db")) as store:
        runs = {r.id: r for r in store.runs(limit=10)}
    assert len(runs) == 2
    assert sorted((r.done, r.errors) for r in runs.values()) == [(24, 0), (24, 24)]
    lines = done.stderr.splitlines()
    [bad] = [x for x in lines if x.startswith("job ") and "[oa]" in x]
    [good] = [x for x in lines if x.startswith("job ") and "[an]" in x]
    assert " ok:" in good and "not ok" not in good
    assert "not ok" in bad and re.search(r"auth|401", bad), bad
    [end] = [x for x in lines if x.startswith("sweep ") and " jobs: " in x]
    assert end.endswith("2 jobs: 1 ok, 1 not ok, 0 failed"), end


def test_a_worker_killed_under_the_launcher_ends_in_a_summary_not_a_traceback(
        project: Path) -> None:
    with MockServer(MockConfig(latency_ms=100)) as slow:
        _point(project, "oa", slow.url + "/v1")
        _point(project, "an", slow.url + "/v1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptlab", "run", "-m", "--db", "k.db",
             "models=[oa],[an]", "grid.repeats=10", "run.concurrency=2",
             "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
            cwd=project, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill_a_worker(proc, slow, 20)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    [failed] = [x for x in lines if x.startswith("the launcher failed:")]
    assert "TerminatedWorkerError" in failed or "killed" in failed.lower()
    with Store.open(str(project / "k.db")) as store:
        runs = store.runs(limit=10)
    assert runs and all(r.status != "completed" for r in runs)
    for r in runs:  # every run of the sweep, one line each, with how to finish it
        [line] = [x for x in lines if r.id in x and x.startswith("run ")]
        assert "interrupted" in line and f"promptlab resume {r.id}" in line
