"""The batch path at its edges: runs split at the limits (requests and bytes per batch),
the budgets (run.max_calls, run.max_cost_usd) held before anything is sent, and the
Responses endpoint in a batch."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_batch_run import batch_project, rows_of, run

from promptlab.cli.main import main
from promptlab.testing import MockConfig, MockServer


def batches_of(db: Path) -> list[tuple[str, int, int, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select model_alias, request_count, round, ingested_at is not null "
                            "from batches order by number").fetchall()


def test_a_run_over_the_request_limit_is_split_and_every_part_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_BATCH_MAX", "30")
    with MockServer(MockConfig(batch_delay_s=0.05)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=100)
        assert run(root, tmp_path / "b.db", "run.batch=true") == "completed"
        assert server.state.counts["batches:openai"] == 4
        assert server.state.counts["batches:anthropic"] == 4
    parts = batches_of(tmp_path / "b.db")
    assert sorted((m, n) for m, n, _, _ in parts) == sorted(
        [(m, n) for m in ("an", "oa") for n in (30, 30, 30, 10)])
    assert all(read for *_, read in parts)
    rows = rows_of(tmp_path / "b.db")
    assert len(rows) == 200 and {r[0] for r in rows.values()} == {"ok"}


def test_a_run_over_the_byte_limit_is_split_below_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 4000
    monkeypatch.setenv("PROMPTLAB_BATCH_MAX", f"100000,{limit}")
    with MockServer(MockConfig(batch_delay_s=0.05)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=60)
        assert run(root, tmp_path / "b.db", "run.batch=true", "models.an.batch=false") == \
            "completed"
    with sqlite3.connect(tmp_path / "b.db") as conn:
        # The request lines, as stored in the attempts, grouped by the batch they went in.
        sizes = conn.execute("select url, sum(length(request_body) + 1), count(*) "
                             "from attempts a join trials t using (run_id, idx) "
                             "where t.model_alias = 'oa' group by url").fetchall()
    assert len(sizes) > 1
    assert all(size <= limit for _, size, _ in sizes)
    assert sum(n for *_, n in sizes) == 60
    assert len(rows_of(tmp_path / "b.db")) == 120


def test_max_calls_holds_on_the_batch_path_and_resume_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "b.db"
    with MockServer(MockConfig(batch_delay_s=0.05)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=40)
        monkeypatch.chdir(root)
        assert main(["run", "run.batch=true", "run.max_calls=25", "--no-progress",
                     "--db", str(db)]) == 1  # stopped by a budget
        err = capsys.readouterr().err
        assert "run.max_calls=25 reached" in err
        with sqlite3.connect(db) as conn:
            assert conn.execute("select status from runs").fetchone() == ("stopped",)
            assert conn.execute("select count(*) from results").fetchone() == (25,)
            assert conn.execute("select sum(request_count) from batches").fetchone() == (25,)
        assert main(["resume", "latest", "run.max_calls=1000", "--no-progress",
                     "--db", str(db)]) == 0
        assert server.state.counts["batch_items"] == 80  # nothing sent twice
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status from runs").fetchone() == ("completed",)
        assert conn.execute("select count(*), count(distinct idx) from results").fetchone() \
            == (80, 80)


def test_max_cost_holds_at_the_batch_price_before_anything_is_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "b.db"
    budget = 0.01
    with MockServer(MockConfig(batch_delay_s=0.05)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=40)
        monkeypatch.chdir(root)
        assert main(["run", "run.batch=true", f"run.max_cost_usd={budget}", "--no-progress",
                     "--db", str(db)]) == 1
        assert "run.max_cost_usd=0.01 reached" in capsys.readouterr().err
        sent = server.state.counts["batch_items"]
    with sqlite3.connect(db) as conn:
        status, = conn.execute("select status from runs").fetchone()
        n, cost = conn.execute("select count(*), sum(cost_usd) from results").fetchone()
    assert status == "stopped"
    assert 0 < n == sent < 80
    assert cost <= budget


def test_the_responses_endpoint_goes_by_batch_with_the_same_outputs(tmp_path: Path) -> None:
    with MockServer(MockConfig(batch_delay_s=0.05)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=30)
        over = ("models.oa.endpoint=responses", "models.an.batch=false")
        assert run(root, tmp_path / "calls.db", *over) == "completed"
        assert run(root, tmp_path / "batch.db", "run.batch=true", *over) == "completed"
        assert server.state.counts["batches:openai"] == 1
    calls, batch = rows_of(tmp_path / "calls.db"), rows_of(tmp_path / "batch.db")
    assert len(batch) == len(calls) == 60
    with sqlite3.connect(tmp_path / "batch.db") as conn:
        keys = {k for k, in conn.execute("select key from trials where model_alias = 'oa'")}
        line, = conn.execute("select request_body from attempts where idx = 0").fetchone()
    assert json.loads(line)["url"] == "/v1/responses"
    for key, (status, output, tin, tout, cost) in calls.items():
        assert status == "ok" and output
        assert batch[key] == ("ok", output, tin, tout, cost / 2 if key in keys else cost)
