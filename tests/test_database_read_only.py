"""open_engine(url, read_only=True): what reading commands use. It changes nothing: no
migration, no journal mode, no new file beside a database that is not already in WAL mode."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from promptlab.errors import UserError
from promptlab.reports.aggregate import aggregate_runs
from promptlab.store import Store, database
from promptlab.store.database import (
    SCHEMA_HEAD,
    alembic_config,
    current_revision,
    open_engine,
    resolve_url,
)

REPO = Path(__file__).resolve().parent.parent


def read_everything(engine: Engine) -> list[Any]:
    """What runs, show, report and export read."""
    store = Store(engine)
    [run] = store.runs()
    return [run, store.run(run.id), list(store.results(run.id)),
            store.scorer_names(run.id), aggregate_runs(store, [run.id], ["model", "prompt"])]


def fingerprint(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file in `directory`: its sha256 and mtime."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(directory.iterdir())}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the checked-in example database, alone in its directory."""
    copy = tmp_path / "example" / "results.db"
    copy.parent.mkdir()
    shutil.copy(REPO / "results.db.example", copy)
    return copy


def test_reading_the_example_changes_no_byte_and_no_mtime(example: Path) -> None:
    before = fingerprint(example.parent)
    engine = open_engine(resolve_url(str(example)), read_only=True)
    assert read_everything(engine)
    engine.dispose()
    assert fingerprint(example.parent) == before  # and no -wal, -shm, -journal or .lock
    assert example.read_bytes()[18:20] == b"\x01\x01"  # still a rollback-journal database


def test_a_read_only_engine_cannot_write(example: Path) -> None:
    engine = open_engine(resolve_url(str(example)), read_only=True)
    with pytest.raises(OperationalError, match="readonly"), engine.begin() as conn:
        conn.execute(text("DELETE FROM runs"))
    engine.dispose()


def test_reading_a_missing_file_names_it_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(UserError) as caught:
        open_engine(resolve_url(str(path)), read_only=True)
    assert str(caught.value) == (f"no database at {path}; run 'promptlab run' first or "
                                 "pass --db")
    assert list(tmp_path.iterdir()) == []


def test_reading_a_database_without_promptlab_tables_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")  # SQLite reads an empty file as an empty database
    with pytest.raises(UserError, match=r"empty\.db has no promptlab tables; run 'promptlab"):
        open_engine(resolve_url(str(path)), read_only=True)
    assert path.read_bytes() == b""


def wal_database(example: Path) -> Path:
    """The example, switched to WAL by a writing open, closed (no -wal or -shm left), and
    then its directory and file made read-only."""
    engine = open_engine(resolve_url(str(example)))
    engine.dispose()
    assert example.read_bytes()[18:20] == b"\x02\x02"
    assert [p.name for p in example.parent.iterdir()] == [example.name]
    example.chmod(0o444)
    example.parent.chmod(0o555)
    return example


@pytest.fixture
def read_only_dir(example: Path) -> Iterator[Path]:
    yield wal_database(example)
    example.parent.chmod(0o755)


def test_a_wal_database_in_a_read_only_directory_can_be_read(read_only_dir: Path) -> None:
    # As root, chmod does not stop writes, so the proof is that nothing was written; the
    # next test reads as a user that really cannot write there.
    before = fingerprint(read_only_dir.parent)
    engine = open_engine(resolve_url(str(read_only_dir)), read_only=True)
    assert read_everything(engine)
    engine.dispose()
    assert fingerprint(read_only_dir.parent) == before


READER = textwrap.dedent("""
    import sys
    from promptlab.store.database import open_engine, resolve_url
    from promptlab.store import Store
    engine = open_engine(resolve_url(sys.argv[1]), read_only=True)
    print(len(Store(engine).runs()))
""")


def runs_as_nobody() -> bool:
    try:
        return subprocess.run([sys.executable, "-c", "import promptlab"], user="nobody",
                              capture_output=True, timeout=60).returncode == 0
    except OSError:  # e.g. the interpreter lives under root's home
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="the test above already reads as a user who "
                                               "cannot write to the directory")
def test_a_wal_database_in_a_read_only_directory_can_be_read_by_another_user() -> None:
    if not runs_as_nobody():
        pytest.skip(f"user nobody cannot run {sys.executable} with promptlab")
    root = Path(tempfile.mkdtemp(prefix="promptlab-ro-"))
    try:
        root.chmod(0o755)
        (root / "example").mkdir()
        db = wal_database(Path(shutil.copy(REPO / "results.db.example",
                                           root / "example" / "results.db")))
        before = fingerprint(db.parent)
        done = subprocess.run([sys.executable, "-c", READER, str(db)], user="nobody",
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
        assert fingerprint(db.parent) == before
    finally:
        (root / "example").chmod(0o755)
        shutil.rmtree(root)


def at_revision(path: Path, revision: str) -> Path:
    """`path` migrated down to `revision`."""
    from alembic import command

    engine = open_engine(resolve_url(str(path)))
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()
    return path


@pytest.mark.parametrize("revision", sorted(database.READABLE_REVISIONS))
def test_read_only_reads_every_revision_it_claims_to_without_migrating(
        revision: str, example: Path, tmp_path: Path) -> None:
    expected = read_everything(open_engine(resolve_url(str(example)), read_only=True))
    old = at_revision(Path(shutil.copy(example, tmp_path / "old.db")), revision)
    engine = open_engine(resolve_url(str(old)), read_only=True)
    assert read_everything(engine) == expected
    assert current_revision(engine) == revision


def test_read_only_refuses_an_old_revision_it_cannot_read(
        example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No such revision today (0002 only added an index); the day a migration changes what
    # the queries read, READABLE_REVISIONS starts over at it.
    monkeypatch.setattr(database, "READABLE_REVISIONS", frozenset({SCHEMA_HEAD}))
    old = at_revision(example, "0001")
    with pytest.raises(UserError) as caught:
        open_engine(resolve_url(str(old)), read_only=True)
    message = str(caught.value)
    assert str(old) in message and "0001" in message and "promptlab run" in message
    assert current_revision(open_engine(resolve_url(str(old)))) == SCHEMA_HEAD


def test_the_newest_revision_is_readable() -> None:
    assert SCHEMA_HEAD in database.READABLE_REVISIONS

