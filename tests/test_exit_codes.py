"""Exit codes of `run`, `resume` and `report`, as the README's "Runs you can trust" states
them: 0 every trial ok, 1 some trial in error or skipped, a budget stop, or a failed
--fail-under gate, 2 a user error, 130 interrupted (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]"]  # 6 trials


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def run(*args: str) -> int:
    return main(["run", "--db", "results.db", "--no-progress", *args])


def add_scorers(project: Path, text: str) -> None:
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + text)


def words(output: str, row: dict[str, object], params: dict[str, object]) -> float:
    """A numeric scorer (its mean is gated): the number of words in the output."""
    return float(len(output.split()))


SCORERS = """
scorers:
  asks:
    type: regex
    pattern: capital
  france:
    type: regex
    pattern: France
  words:
    type: python
    function: test_exit_codes:words
"""


def test_0_when_every_trial_is_ok(mock_server: MockServer) -> None:
    assert run(*ONE) == 0


def test_1_when_a_trial_ends_in_error(project: Path, mock_server: MockServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    (project / "data/rows.jsonl").write_text('{"id": "x", "country": "Nowhere MOCK_FAULT=400"}\n'
                                             '{"id": "y", "country": "Peru"}\n')
    assert run(*ONE) == 1
    assert "2 trials without an ok result" in capsys.readouterr().err


def test_1_when_an_endpoint_stopped_after_a_401_and_trials_were_skipped(
        mock_server: MockServer) -> None:
    mock_server.state.config.api_key = "the-right-key"
    assert run(*ONE, "run.concurrency=1") == 1
    assert mock_server.state.counts["status:401"] == 1  # the rest were skipped, not sent


def test_1_when_a_budget_stops_the_run(mock_server: MockServer) -> None:
    assert run(*ONE, "run.max_calls=2") == 1


def test_2_for_a_user_error_and_nothing_is_sent(mock_server: MockServer) -> None:
    assert run(*ONE, "run.concurrency=lots") == 2
    assert main(["resume", "no-such-run", "--db", "results.db"]) == 2
    assert mock_server.request_count == 0


def test_130_when_interrupted(project: Path, mock_server: MockServer) -> None:
    model = project / "experiments/models/oa.yaml"
    model.write_text(model.read_text() + "headers:\n  x-mock-latency-ms: '50'\n")
    env = {**os.environ, "PROMPTLAB_DB": str(project / "int.db")}
    proc = subprocess.Popen([sys.executable, "-m", "promptlab", "run", "grid.repeats=10",
                             "run.concurrency=2"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while mock_server.request_count < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 130, err


def test_resume_exits_like_run(project: Path, mock_server: MockServer) -> None:
    assert run(*ONE, "run.max_calls=2") == 1
    assert main(["resume", "latest", "--db", "results.db", "--no-progress",
                 "run.max_calls=3"]) == 1  # stopped again
    assert main(["resume", "latest", "--db", "results.db", "--no-progress",
                 "run.max_calls=100"]) == 0


def test_fail_under_gates_pass_rates_and_means(project: Path, mock_server: MockServer,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    add_scorers(project, SCORERS)
    assert run(*ONE, "--fail-under", "asks=1", "--fail-under", "words=3") == 0
    capsys.readouterr()
    code = run(*ONE, "--fail-under", "asks=0.9", "--fail-under", "france=0.5",
               "--fail-under", "words=1000")
    err = capsys.readouterr().err
    assert code == 1
    gates = [line for line in err.splitlines() if line.startswith("fail-under")]
    assert len(gates) == 2, err
    assert "france" in gates[0] and "pass rate 0.333" in gates[0] and "< 0.5" in gates[0]
    assert "words" in gates[1] and "mean" in gates[1] and "< 1000" in gates[1]
    # The same gates on a stored run, with report.
    assert main(["report", "--db", "results.db", "--fail-under", "france=0.3"]) == 0
    capsys.readouterr()
    assert main(["report", "--db", "results.db", "--fail-under", "france=0.5"]) == 1
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("fail-under")]
    assert "france" in line


def test_fail_under_an_unknown_scorer_is_a_user_error_naming_the_scorers(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    add_scorers(project, SCORERS)
    assert run(*ONE, "--fail-under", "exact=0.9") == 2
    err = capsys.readouterr().err
    assert mock_server.request_count == 0  # refused before the first call
    assert "exact" in err and "asks, france, words" in err and len(err.strip().splitlines()) == 1
    assert run(*ONE, "--fail-under", "asks") == 2
    assert "SCORER=VALUE" in capsys.readouterr().err
    assert run(*ONE) == 0
    assert main(["report", "--db", "results.db", "--fail-under", "exact=0.9"]) == 2
    assert "asks, france, words" in capsys.readouterr().err


def test_the_exit_codes_are_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Runs you can trust", 1)[1].split("\n## ", 1)[0]
    for code in ("`0`", "`1`", "`2`", "`130`", "--fail-under"):
        assert code in section


def test_run_max_calls_is_the_runs_across_resumes(mock_server: MockServer) -> None:
    """As run.max_cost_usd is: a resume under the same budget sends nothing more (it sent
    max_calls more each time)."""
    assert run(*ONE, "run.max_calls=2") == 1
    assert mock_server.request_count == 2
    assert main(["resume", "latest", "--db", "results.db", "--no-progress",
                 "run.max_calls=2"]) == 1
    assert mock_server.request_count == 2
    assert main(["resume", "latest", "--db", "results.db", "--no-progress",
                 "run.max_calls=3"]) == 1
    assert mock_server.request_count == 3
