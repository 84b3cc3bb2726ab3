"""100,000 result lines read back into SQLite, with memory flat as the file grows.

Slow-ish by design (two child processes ingest 10,000 and 100,000 lines; ~10 s of CPU,
longer in wall time on a loaded machine): the benchmark child (benchmarks/_batch_ingest.py)
is run as is, with its quick send side, and checks that every result is stored."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def ingest(n: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/_batch_ingest.py"), str(n),
                           "--synthetic"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, float] = json.loads(done.stdout)
    return out


def test_100000_result_lines_are_all_stored_and_memory_stays_flat() -> None:
    small, large = ingest(10_000), ingest(100_000)
    assert small["lines"] == 10_000 and large["lines"] == 100_000  # the child counts them
    # Ten times the lines, not ten times the memory: growth while ingesting stays within a
    # few MB of the small file's (it was +143 MB at 100,000 lines before streaming).
    assert large["growth_mb"] < small["growth_mb"] + 25, (small, large)
