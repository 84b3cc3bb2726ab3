"""Every user error: one line naming the file and key, exit code 2, and zero requests sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer


def append(path: str, text: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        with open(root / path, "a", encoding="utf-8") as f:
            f.write(text)
    return edit


def replace(path: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        p = root / path
        p.write_text(p.read_text().replace(old, new))
    return edit


def nothing(root: Path) -> None:
    pass


CASES = [
    ("unknown_key", append("experiments/models/oa.yaml", "temprature: 0.5\n"), [],
     ["experiments/models/oa.yaml", "models.oa.temprature"]),
    ("wrong_type", nothing, ["run.concurrency=lots"],
     ["experiments/run/fast.yaml", "run.concurrency"]),
    ("missing_required", replace("experiments/models/an.yaml", "model: mock-large\n", ""), [],
     ["experiments/models/an.yaml", "models.an.model", "required"]),
    ("missing_variable", replace("templates/ask.j2", "{{ country }}", "{{ contry }}"), [],
     ["templates/ask.j2", "'contry' is undefined", "row 'fr'"]),
    ("missing_api_key", nothing, ["models.oa.api_key_env=NO_SUCH_KEY_VAR"],
     ["NO_SUCH_KEY_VAR is not set", "experiments/models/oa.yaml"]),
    ("unknown_model_option", nothing, ["models=[oa,nope]"],
     ["experiments/config.yaml", "nope"]),
    ("unknown_provider", replace("experiments/models/oa.yaml", "provider: openai",
                                 "provider: openia"),
     [], ["experiments/models/oa.yaml", "unknown provider 'openia'"]),
    ("missing_dataset_file", replace("experiments/dataset/rows.yaml", "rows.jsonl", "nope.jsonl"),
     [], ["experiments/dataset/rows.yaml", "dataset.path", "does not exist"]),
    ("missing_template_file", replace("experiments/prompts/plain.yaml", "ask.j2", "gone.j2"), [],
     ["experiments/prompts/plain.yaml", "template 'gone.j2' not found"]),
    ("bad_override_syntax", nothing, ["run.concurrency=[1,"], ["experiments/config.yaml"]),
    ("template_syntax", replace("templates/ask.j2", "{{ country }}", "{{ country "), [],
     ["templates/ask.j2", "syntax error"]),
    ("bad_jsonl", append("data/rows.jsonl", "{not json}\n"), [], ["rows.jsonl:4", "invalid JSON"]),
    ("empty_grid_axis", nothing, ["grid.params.temperature=[]"],
     ["experiments/grid/small.yaml", "grid.params.temperature"]),
]


@pytest.mark.parametrize(("name", "edit", "overrides", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_sends_nothing(
        name: str, edit: Callable[[Path], None], overrides: list[str], expected: list[str],
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    edit(project)
    monkeypatch.chdir(project)
    code = main(["run", "--db", str(project / "results.db"), *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in expected:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
    assert mock_server.request_count == 0


def test_no_experiments_directory_is_a_user_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    assert "experiments/config.yaml" in capsys.readouterr().err


def test_cfg_job_prints_the_composed_config(project: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str],
                                            mock_server: MockServer) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--cfg", "job", "run.concurrency=64", "models=[an]"]) == 0
    out = capsys.readouterr().out
    assert "concurrency: 64" in out and "an:" in out and "oa:" not in out
    assert mock_server.request_count == 0
