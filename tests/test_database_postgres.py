"""The database layer on a real PostgreSQL (the cluster of tests/test_postgres.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from test_database_concurrency import open_all_at_once, rows_and_revision
from test_postgres import postgres_url  # noqa: F401  (the fixture)
from test_postgres import pytestmark as postgres_marks

from promptlab.errors import UserError
from promptlab.store.database import SCHEMA_HEAD, current_revision, open_engine

pytestmark = postgres_marks


def new_database(server_url: str, name: str) -> str:
    """A new, empty database on the test cluster; its URL."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def test_concurrent_openers_of_a_new_postgres_database_all_succeed(
        postgres_url: str) -> None:  # noqa: F811
    for n in range(4):
        url = new_database(postgres_url, f"concurrent{n}")
        assert open_all_at_once(url, 2) == []
        assert rows_and_revision(url) == (2, SCHEMA_HEAD)


def test_read_only_on_postgres_reads_and_cannot_write(postgres_url: str) -> None:  # noqa: F811
    url = new_database(postgres_url, "readonly")
    open_engine(url).dispose()
    engine = open_engine(url, read_only=True)
    assert current_revision(engine) == SCHEMA_HEAD
    with pytest.raises(DBAPIError, match="read-only"), engine.begin() as conn:
        conn.execute(text("INSERT INTO artifacts (sha256, content) VALUES ('a', 'b')"))
    engine.dispose()


def test_read_only_on_an_empty_postgres_database_creates_nothing(
        postgres_url: str) -> None:  # noqa: F811
    url = new_database(postgres_url, "empty")
    with pytest.raises(UserError, match="has no promptlab tables"):
        open_engine(url, read_only=True)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []
    engine.dispose()
