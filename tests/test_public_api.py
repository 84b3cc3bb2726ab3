"""The public Python API: what `import promptlab` offers, pinned, and run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptlab
from promptlab.testing import MockServer


def test_public_names_are_pinned() -> None:
    assert sorted(promptlab.__all__) == sorted([
        "ConfigError", "PromptlabError", "ProviderError", "Results", "RunResult", "UserError",
        "__version__", "load_results", "resume", "run"])
    for name in promptlab.__all__:
        assert getattr(promptlab, name) is not None


def test_importing_promptlab_loads_no_heavy_module() -> None:
    import subprocess
    import sys

    code = ("import sys, promptlab; heavy = [m for m in ('hydra', 'sqlalchemy', 'aiohttp', "
            "'promptlab.runner') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_run_sends_every_trial_and_returns_a_result(project: Path,
                                                    mock_server: MockServer) -> None:
    db = str(project / "api.db")
    result = promptlab.run(["grid.repeats=2"], experiments=project / "experiments", db=db)
    planned = 2 * 2 * 4 * 3 * 2  # models x prompts x grid points x rows x repeats
    assert result.status == "completed" and result.ok
    assert result.counts["planned"] == result.counts["ok"] == planned
    assert result.counts["errors"] == 0 and result.counts["cached"] == 0
    assert mock_server.request_count == planned
    rows = result.results()
    assert rows.run_id == result.run_id and len(rows) == planned
    assert {r["model"] for r in rows} == {"oa", "an"}
    assert "sk-test" not in repr(result)  # no secret, no URL with a password, in the repr


def test_a_second_run_comes_from_the_cache(project: Path, mock_server: MockServer) -> None:
    db = str(project / "api.db")
    first = promptlab.run(experiments=project / "experiments", db=db)
    sent = mock_server.request_count
    second = promptlab.run(experiments=project / "experiments", db=db)
    assert second.run_id != first.run_id
    assert second.counts["cached"] == second.counts["planned"] == first.counts["planned"]
    assert mock_server.request_count == sent


def test_resume_of_a_stopped_run_sends_only_the_rest(project: Path,
                                                     mock_server: MockServer) -> None:
    db = str(project / "api.db")
    stopped = promptlab.run(["run.max_calls=10", "run.cache=off"],
                            experiments=project / "experiments", db=db)
    assert stopped.status == "stopped" and stopped.counts["ok"] == 10
    finished = promptlab.resume(stopped.run_id, ["run.max_calls=null"], db=db,
                                experiments=project / "experiments")
    assert finished.run_id == stopped.run_id and finished.status == "completed"
    assert mock_server.request_count == 48
    assert len(promptlab.load_results(db, stopped.run_id)) == 48


def test_a_user_error_is_raised_before_any_call(project: Path, mock_server: MockServer) -> None:
    with pytest.raises(promptlab.UserError, match="nope"):
        promptlab.run(["models=[oa,nope]"], experiments=project / "experiments",
                      db=str(project / "api.db"))
    assert mock_server.request_count == 0
    assert not (project / "api.db").exists()
