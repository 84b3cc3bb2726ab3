"""The cache's index on a real PostgreSQL: its trigger function keeps the same entries the
SQLite triggers do (the tests of test_cache_entries.py, run here against PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from test_cache_entries import (  # noqa: F401
    test_a_deleted_runs_entries_go_and_the_next_newest_source_answers,
    test_a_result_not_for_the_cache_is_never_an_entry,
    test_a_resumed_trial_whose_error_is_replaced_by_an_answer_becomes_the_entry,
    test_fresh_ok_results_are_entries_hits_and_errors_never_and_the_newest_answers,
)
from test_postgres import postgres_url, pytestmark  # noqa: F401

from promptlab.store import Store


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store.open(postgres_url)
    try:
        yield s
    finally:
        with s.engine.begin() as conn:
            for table in ("report_cell_scores", "report_cells", "scores", "attempts",
                          "results", "cache_entries", "trials", "run_artifacts", "runs"):
                conn.execute(text(f"delete from {table}"))
        s.close()
