"""A database that cannot be opened is a user error: one line that names it (password
masked) and says what to do, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.servers.managed import free_port
from promptlab.store.database import open_engine, resolve_url


def not_sqlite(tmp: Path) -> str:
    path = tmp / "notes.db"
    path.write_text("this is not a database\n" * 200)
    return str(path)


def closed_port(_tmp: Path) -> str:
    pytest.importorskip("psycopg")
    return f"postgresql+psycopg://alice:hunter2@127.0.0.1:{free_port()}/promptlab"


CASES: dict[str, tuple[Callable[[Path], str], list[str]]] = {
    "not-a-sqlite-file": (not_sqlite, ["notes.db", "not a SQLite database"]),
    "unknown-dialect": (lambda _: "foo://bar", ["foo://bar", "unknown database", "sqlite:///",
                                               "postgresql+psycopg://"]),
    "unknown-driver": (lambda _: "postgresql+nosuch://h/db", ["postgresql+nosuch://h/db",
                                                               "unknown database"]),
    "server-not-reachable": (closed_port, ["postgresql+psycopg://alice:***@127.0.0.1:",
                                           "Connection refused", "server"]),
    "driver-not-installed": (lambda _: "postgresql+pg8000://alice:hunter2@db.example/x",
                             ["postgresql+pg8000://alice:***@db.example/x", "pg8000",
                              "pip install 'promptlab[postgres]'"]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
def test_open_names_the_database_and_the_fix_in_one_line(
        case: str, read_only: bool, tmp_path: Path) -> None:
    make, fragments = CASES[case]
    with pytest.raises(UserError) as caught:
        open_engine(resolve_url(make(tmp_path)), read_only=read_only)
    message = str(caught.value)
    assert "\n" not in message and "hunter2" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("case", list(CASES))
def test_cli_prints_one_line_and_exits_2(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, fragments = CASES[case]
    assert main(["runs", "--db", make(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert fragments[0] in err and "hunter2" not in err


def test_missing_psycopg_says_which_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if promptlab[postgres] were absent
    with pytest.raises(UserError, match=r"pip install 'promptlab\[postgres\]'$"):
        open_engine("postgresql+psycopg://alice:hunter2@db.example/x")


def test_a_file_not_sqlite_is_left_as_it_was(tmp_path: Path) -> None:
    path = Path(not_sqlite(tmp_path))
    before = path.read_bytes()
    with pytest.raises(UserError):
        open_engine(resolve_url(str(path)))
    assert path.read_bytes() == before


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
def test_a_schema_from_a_newer_promptlab_asks_to_upgrade_promptlab(
        read_only: bool, tmp_path: Path) -> None:
    url = resolve_url(str(tmp_path / "future.db"))
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    with pytest.raises(UserError) as caught:
        open_engine(url, read_only=read_only)
    message = str(caught.value)
    assert "future.db" in message and "9999_from_the_future" in message
    assert "newer promptlab" in message and "upgrade promptlab" in message
