"""Several processes may open a new database at the same moment (a sweep launched from a
script, two terminals): exactly one migrates it, the others wait and then use it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import text

from promptlab.store.database import SCHEMA_HEAD, current_revision, open_engine, resolve_url

# A worker imports everything first (Alembic included, so the race is not hidden behind
# import time), says "ready", waits for "go" on stdin, then opens the database and writes
# one row of its own.
WORKER = textwrap.dedent("""
    import sys
    import alembic.command  # noqa: F401
    from sqlalchemy import text
    from promptlab.store.database import open_engine, resolve_url
    url, name = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()
    engine = open_engine(resolve_url(url))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO artifacts (sha256, content) VALUES (:s, :c)"),
                     {"s": name, "c": name})
    engine.dispose()
""")


def open_all_at_once(url: str, workers: int, timeout_s: float = 60) -> list[str]:
    """Start `workers` processes, release them together, and return the error of each one
    that failed."""
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, f"worker-{i}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(workers)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:  # the barrier: every worker is blocked on stdin until now
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        deadline = time.monotonic() + timeout_s
        failures = []
        for p in procs:
            _, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            if p.returncode != 0:
                raised = [x for x in err.splitlines() if "Error: " in x]
                failures.append(raised[-1] if raised else f"exit code {p.returncode}: {err}")
        return failures
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def rows_and_revision(url: str) -> tuple[int, str | None]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM artifacts WHERE sha256 LIKE 'worker-%'")).scalar()
        return int(count or 0), current_revision(engine)
    finally:
        engine.dispose()


WORKERS, ROUNDS = 8, 3


def test_concurrent_openers_of_a_new_sqlite_file_all_succeed(tmp_path: Path) -> None:
    started = time.monotonic()
    for n in range(ROUNDS):
        db = tmp_path / f"round{n}" / "results.db"
        db.parent.mkdir()
        assert open_all_at_once(str(db), WORKERS) == []
        assert rows_and_revision(resolve_url(str(db))) == (WORKERS, SCHEMA_HEAD)
        assert sorted(p.name for p in db.parent.iterdir()) == ["results.db"]  # no lock left
    assert time.monotonic() - started < 120



class LockedCursor:
    """A cursor whose WAL switch meets another opener's lock `times` times, the way SQLite
    answers when waiting could deadlock: at once, without calling the busy handler."""

    def __init__(self, times: int) -> None:
        self.left, self.calls = times, 0

    def execute(self, sql: str) -> None:
        import sqlite3
        self.calls += 1
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError("database is locked")


def test_the_wal_switch_is_tried_again_while_another_opener_holds_the_lock() -> None:
    from promptlab.store.database import _switch_to_wal
    cur = LockedCursor(times=3)
    _switch_to_wal(cur)
    assert cur.calls == 4


def test_the_wal_switch_gives_up_after_its_patience() -> None:
    import sqlite3

    import pytest

    from promptlab.store.database import _switch_to_wal
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _switch_to_wal(LockedCursor(times=10**6), patience_s=0.3)
    assert time.monotonic() - started < 1.0
