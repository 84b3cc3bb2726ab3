"""`run -m` goes through Hydra's own sweeper and launcher plugins (joblib, submitit_local)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from promptlab.cli.main import main
from promptlab.store import Store
from promptlab.testing import MockConfig, MockServer

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def _promptlab(project: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPTLAB_TEST_OA_KEY": "sk-test"}
    return subprocess.run([sys.executable, "-m", "promptlab", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _point_at(project: Path, url: str) -> None:
    for name in ("oa", "an"):
        f = project / f"experiments/models/{name}.yaml"
        text = f.read_text()
        f.write_text("\n".join(line if not line.startswith("base_url:") else f"base_url: {url}"
                               for line in text.splitlines()) + "\n")


def test_joblib_runs_two_jobs_in_parallel_and_the_sweep_reports_both(project: Path) -> None:
    with MockServer(MockConfig(latency_ms=150)) as slow:
        _point_at(project, slow.url + "/v1")
        # 12 trials per job, one at a time: about 1.8 s each if they ran in sequence.
        done = _promptlab(project, "run", "-m", "--db", "j.db", "models=[oa],[an]",
                          "run.concurrency=1", "hydra/launcher=joblib",
                          "hydra.launcher.n_jobs=2")
    assert done.returncode == 0, done.stderr
    assert not (project / "multirun").exists() and not (project / "outputs").exists()
    with Store.open(str(project / "j.db")) as store:
        runs = store.runs(limit=10)
        assert len(runs) == 2 and len({r.sweep_id for r in runs}) == 1
        spans = [(r.created_at, r.finished_at) for r in runs]
        sweep = runs[0].sweep_id
    (a0, a1), (b0, b1) = spans
    assert a1 is not None and b1 is not None
    overlap = (min(a1, b1) - max(a0, b0)).total_seconds()
    print(f"joblib: overlap {overlap:.2f}s of {(a1 - a0).total_seconds():.2f}s and "
          f"{(b1 - b0).total_seconds():.2f}s")
    assert overlap > 0.5
    assert "job 0 " in done.stderr and "job 1 " in done.stderr
    report = _promptlab(project, "report", "--sweep", str(sweep), "--db", "j.db")
    assert report.returncode == 0, report.stderr
    assert "oa" in report.stdout and "an" in report.stdout


def test_submitit_local_sweep_completes(project: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    done = _promptlab(project, "run", "-m", "--db", "s.db", "grid.repeats=1,2",
                      "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=2")
    assert done.returncode == 0, done.stderr
    with Store.open(str(project / "s.db")) as store:
        runs = store.runs(limit=10)
    assert sorted(r.planned for r in runs) == [48, 96]
    assert all(r.status == "completed" for r in runs)
    assert not (project / "multirun").exists()


def test_an_unknown_launcher_is_one_line_and_exit_2(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    code = main(["run", "-m", "--db", "x.db", "grid.repeats=1,2", "hydra/launcher=nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "nope" in err
