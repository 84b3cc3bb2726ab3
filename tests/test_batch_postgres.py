"""The batch path on a real PostgreSQL: pending attempts stored when sent, completed when
read back (PostgreSQL counts the rows an executemany changed differently from SQLite),
retries, and a resume after a budget stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from test_batch_run import batch_project
from test_postgres import postgres_url, pytestmark  # noqa: F401 (the fixture, its skips)

from promptlab.cli.main import main
from promptlab.testing import MockConfig, MockServer


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_BATCH_POLL_S", "0.05,0.2")


def test_a_batch_run_with_retries_and_a_resume_on_postgres(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        postgres_url: str) -> None:  # noqa: F811 (the fixture imported above)
    with MockServer(MockConfig(batch_delay_s=0.05)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=30)
        data = root / "data/items.jsonl"
        data.write_text(data.read_text().replace('"n": 1, "extra": ""',
                                                 '"n": 1, "extra": "MOCK_BATCH=expired"'))
        monkeypatch.chdir(root)
        assert main(["run", "run.batch=true", "run.max_calls=40", "--no-progress",
                     "--db", postgres_url]) == 1  # stopped by the budget
        assert main(["resume", "latest", "run.max_calls=1000", "--no-progress",
                     "--db", postgres_url]) == 1  # row 1 expires every time: errors
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            statuses = dict(conn.execute(text(
                "select status, count(*) from results group by status")).all())
            attempts = conn.execute(text(
                "select count(*), sum(case when error_kind = 'batch_pending' then 1 else 0 "
                "end) from attempts")).one()
    finally:
        engine.dispose()
    assert statuses == {"ok": 58, "error": 2}
    # One attempt per trial; the two expired ones: two in the run (max_attempts=2), and one
    # more each when resume sends them again (their attempts so far count). None pending.
    assert tuple(attempts) == (60 + 2 + 2, 0)
