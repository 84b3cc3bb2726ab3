from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from promptlab.errors import UserError
from promptlab.store import Store
from promptlab.store.database import (
    SCHEMA_DUMP,
    SCHEMA_HEAD,
    alembic_config,
    current_revision,
    dump_schema,
    migrate,
    open_engine,
    resolve_url,
)
from promptlab.store.tables import Base

REPO = Path(__file__).resolve().parent.parent


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    engine = open_engine(resolve_url(str(tmp_path / "fresh.db")), migrate_schema=False)
    migrate(engine, from_dump=False)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_new_sqlite_database_starts_from_the_dump_of_what_the_migrations_make(
        tmp_path: Path) -> None:
    migrated = open_engine(resolve_url(str(tmp_path / "migrated.db")), migrate_schema=False)
    migrate(migrated, from_dump=False)
    with migrated.connect() as conn:
        made = dump_schema(conn)
    assert made == SCHEMA_DUMP.read_text(encoding="utf-8"), (
        "promptlab/store/schema.sqlite.sql is behind the migrations: run "
        "python scripts/make_schema_dump.py")
    fresh = open_engine(resolve_url(str(tmp_path / "fresh.db")))  # from the dump
    with fresh.connect() as conn:
        assert dump_schema(conn) == made  # every table, index and trigger, in order
        assert current_revision(fresh) == SCHEMA_HEAD
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    migrated.dispose()
    fresh.dispose()


def test_sqlite_pragmas_are_on(tmp_path: Path) -> None:
    engine = open_engine(resolve_url(str(tmp_path / "p.db")))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_results_db_example_is_current_and_complete(tmp_path: Path) -> None:
    copy = tmp_path / "example.db"
    shutil.copy(REPO / "results.db.example", copy)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with sqlite3.connect(copy) as conn:
        assert conn.execute("select version_num from alembic_version").fetchone()[0] == head, (
            "results.db.example is behind the migrations: run python scripts/make_example_db.py")
    store = Store.open(str(copy))
    [run] = store.runs()
    info = store.run(run.id)
    assert info.status == "completed" and info.done == info.planned > 0
    rows = list(store.results(run.id))
    assert len(rows) == info.planned and all(r.status == "ok" for r in rows)
    assert {r.model_alias for r in rows} == set(info.config["models"])
    # A real run of the default experiment: the local model, not the mock it can fall back to.
    assert set(info.config["models"]) == {"gemma-local"}
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as conn:
        assert conn.execute("select distinct endpoint from trials").fetchall() == [
            ("managed:llamacpp:",)]
    assert json.dumps(info.manifest)  # provenance is there


def test_schema_head_constant_is_the_newest_migration() -> None:
    from promptlab.store.database import SCHEMA_HEAD

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def test_a_new_database_cut_off_while_its_schema_is_made_opens_afterwards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import promptlab.store.database as database

    statements = SCHEMA_DUMP.read_text(encoding="utf-8").split(";\n\n")
    broken = tmp_path / "broken.sql"
    broken.write_text(";\n\n".join([*statements[:20], "CREATE TABLE oops (", *statements[20:]]),
                      encoding="utf-8")
    monkeypatch.setattr(database, "SCHEMA_DUMP", broken)
    db = str(tmp_path / "new.db")
    with pytest.raises(UserError):
        open_engine(resolve_url(db))
    with sqlite3.connect(db) as conn:  # nothing of the schema was left behind
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    monkeypatch.setattr(database, "SCHEMA_DUMP", SCHEMA_DUMP)
    engine = open_engine(resolve_url(db))
    assert current_revision(engine) == SCHEMA_HEAD
    engine.dispose()


def test_someone_elses_sqlite_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE results (x INTEGER)")
    with pytest.raises(UserError, match="not a promptlab database.*pass --db"):
        open_engine(resolve_url(str(db)))
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["results"]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize("version", ["deadbeef1234", "0007"])
def test_another_applications_alembic_database_is_refused_and_left_as_it_was(
        tmp_path: Path, version: str) -> None:
    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);"
                           f"INSERT INTO alembic_version VALUES ('{version}');"
                           "CREATE TABLE users (id INTEGER);")
    before = db.read_bytes()
    with pytest.raises(UserError, match="not a promptlab database"):
        open_engine(resolve_url(str(db)))
    assert db.read_bytes() == before  # not even switched to WAL


def test_latest_is_never_an_llm_judges_run(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "j.db"))
    store.create_run(run_id="scored", name="x", planned=1, config={}, overrides=[],
                     manifest={"host": "h"}, artifacts={})
    store.create_run(run_id="judge", name="x:judge:j", planned=1, config={}, overrides=[],
                     manifest={"judge_for": "scored"}, artifacts={}, parent_run_id="scored")
    assert store.resolve_run_id("latest") == "scored"
    assert store.resolve_run_id("judge") == "judge"
    store.close()
