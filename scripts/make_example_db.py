"""Rebuild results.db.example: the example experiment, run against the built-in mock server.

    python scripts/make_example_db.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from promptlab.cli import main as cli

    target = ROOT / "results.db.example"
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    os.chdir(ROOT)
    code = cli(["run", "+experiment=example", "--db", str(target), "--no-progress"])
    if code == 0:
        import sqlite3

        with sqlite3.connect(target) as conn:  # fold the WAL in: one self-contained file
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
    return code


if __name__ == "__main__":
    sys.exit(main())
