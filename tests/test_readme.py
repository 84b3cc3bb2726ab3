from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    install_and_run, test_command = blocks[0].strip(), blocks[1].strip()
    assert "promptlab run" in install_and_run
    ci = (REPO / ".ci/run").read_text().splitlines()
    assert test_command in ci
