"""The benchmark suite still runs (tiny sizes; its numbers are judged in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_benchmark_suite_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/run.py"), "--smoke",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 9  # 9: promptlab serve over the report database
    assert "0 requests sent" in rows[3]["value"]  # the cached rerun sent nothing
    assert "calls/s" in rows[0]["value"] and "us/call" in rows[7]["value"]
