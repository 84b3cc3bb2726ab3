"""The command line in a shell: a closed pipe is a quiet exit, --version says the version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import promptlab
from promptlab.cli import main

PROMPTLAB = Path(sys.executable).parent / "promptlab"


@pytest.fixture
def big_db(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run whose export is far larger than a pipe's buffer (1,600 trials)."""
    monkeypatch.chdir(project)
    (project / "data/rows.jsonl").write_text("".join(
        json.dumps({"id": f"r{i}", "country": f"Country {i} " + "x" * 200}) + "\n"
        for i in range(100)))
    assert main(["run", "--db", "big.db", "--no-progress"]) == 0
    return project / "big.db"


def shell(command: str, cwd: Path) -> tuple[str, str, list[int]]:
    """Run `command` in bash; returns stdout, stderr and every pipeline member's status."""
    done = subprocess.run(["bash", "-c", command + '; echo "${PIPESTATUS[@]}" > status.txt'],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    status = [int(x) for x in (cwd / "status.txt").read_text().split()]
    return done.stdout, done.stderr, status


@pytest.mark.parametrize("command", [
    "export latest --db big.db",
    "report latest --db big.db --by row,model,prompt,temperature,top_p --format markdown",
    "report latest --db big.db --by row,model,prompt,temperature,top_p",  # a rich table
    "show latest --config --db big.db",
])
def test_a_closed_pipe_is_a_quiet_exit(big_db: Path, command: str) -> None:
    out, err, status = shell(f"{PROMPTLAB} {command} | head -1", big_db.parent)
    assert err == ""
    assert len(out.splitlines()) == 1
    # Cut short by the reader, like any Unix tool stopped by SIGPIPE (128 + 13); or done
    # before the reader left.
    assert status[0] in (0, 141) and status[1] == 0


def test_export_into_head_is_cut_short_with_status_141(big_db: Path) -> None:
    out, err, status = shell(f"{PROMPTLAB} export latest --db big.db | head -1",
                             big_db.parent)
    assert err == "" and json.loads(out)["idx"] == 0
    assert status == [141, 0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"promptlab {promptlab.__version__}\n"
    done = subprocess.run([str(PROMPTLAB), "--version"], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == f"promptlab {promptlab.__version__}"
