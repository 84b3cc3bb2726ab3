from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    install_and_run, test_command = blocks[0].strip(), blocks[1].strip()
    assert "promptlab run" in install_and_run
    ci = (REPO / ".ci/run").read_text().splitlines()
    assert test_command in ci


def test_the_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python example, verbatim, in a copy of the repository's experiments
    with the mock model (it needs no local model and no key)."""
    import shutil

    text = (REPO / "README.md").read_text()
    [example] = re.findall(r"```python\n(.*?)\n```", text, re.S)
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copytree(REPO / "datasets", tmp_path / "datasets")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.status == "completed"
    assert len(namespace["rows"]) == result.counts["planned"] > 0
