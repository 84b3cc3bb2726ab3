"""run.batch=true against the mock's batch APIs: every result, the same outputs as call by
call, half the cost, retries of errored and expired items, and the batches recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import write
from helpers import prepared_for

from promptlab.cli.main import main
from promptlab.errors import UserError
from promptlab.runner.session import NewRun, Session
from promptlab.store import Store
from promptlab.testing import MockConfig, MockServer

ROWS = 1000


def batch_project(root: Path, url: str, rows: int = ROWS) -> Path:
    write(root / "experiments/config.yaml", """
        defaults:
          - _self_
        name: batch-exp
        models:
          oa:
            provider: openai
            model: mock-small
            base_url: URL
            api_key_env: PROMPTLAB_TEST_OA_KEY
            price: {input_per_mtok: 3.0, output_per_mtok: 7.0}
          an:
            provider: anthropic
            model: mock-large
            base_url: URL
            params: {max_tokens: 20}
            price: {input_per_mtok: 1.5, output_per_mtok: 5.0}
        prompts:
          ask:
            messages:
              - role: user
                content: "What is item {{ n }}? {{ extra }}"
        dataset:
          name: items
          path: data/items.jsonl
        run:
          concurrency: 16
          progress: false
          max_attempts: 2
          backoff_base_s: 0.01
          backoff_max_s: 0.02
        """.replace("URL", url))
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data/items.jsonl").write_text("".join(
        json.dumps({"id": f"r{i}", "n": i, "extra": ""}) + "\n" for i in range(rows)))
    return root


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_BATCH_POLL_S", "0.05,0.2")


def run(root: Path, db: Path, *overrides: str, run_id: str = "r1") -> str:
    prepared = prepared_for(root, *overrides)
    with Store.open(str(db)) as store:
        session = Session(store, prepared.spec, prepared.renderer)
        outcome = session.run(NewRun(config=prepared.loaded.config, overrides=overrides),
                              run_id)
        return outcome.status


def rows_of(db: Path) -> dict[str, tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return {key: tuple(rest) for key, *rest in conn.execute(
            "select t.key, r.status, r.output, r.input_tokens, r.output_tokens, r.cost_usd "
            "from trials t join results r using (run_id, idx)")}


def test_batch_run_equals_call_by_call_at_half_the_cost(tmp_path: Path) -> None:
    with MockServer(MockConfig(batch_delay_s=0.3)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1")
        assert run(root, tmp_path / "calls.db") == "completed"
        assert server.state.counts["batches:created"] == 0
        assert run(root, tmp_path / "batch.db", "run.batch=true") == "completed"
        assert server.state.counts["batches:openai"] == 1
        assert server.state.counts["batches:anthropic"] == 1
    calls, batch = rows_of(tmp_path / "calls.db"), rows_of(tmp_path / "batch.db")
    assert len(batch) == len(calls) == 2 * ROWS
    for key, (status, output, tin, tout, cost) in calls.items():
        assert status == "ok"
        assert batch[key] == ("ok", output, tin, tout, cost / 2)
    with Store.open(str(tmp_path / "batch.db")) as store:
        batches = store.batches("r1")
        assert sorted(b.model_alias for b in batches) == ["an", "oa"]
        assert all(b.batch_id and b.ingested_at and b.request_count == ROWS for b in batches)
        ids = {b.model_alias: b.batch_id for b in batches}
    with sqlite3.connect(tmp_path / "batch.db") as conn:
        url, request, response, secret = conn.execute(
            "select url, request_body, response_body, request_headers_json like '%SECRET%' "
            "from attempts where idx = 0").fetchone()
    # The attempt: the JSONL request line and the result line; the batch id in its URL.
    assert json.loads(request)["custom_id"] == "t0"
    assert json.loads(response)["custom_id"] == "t0"
    assert url.endswith(f"/batches/{ids['oa']}") and not secret


def test_errored_and_expired_items_are_retried_then_recorded_with_the_reason(
        tmp_path: Path) -> None:
    with MockServer(MockConfig(batch_delay_s=0.1)) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=6)
        data = root / "data/items.jsonl"
        data.write_text(data.read_text().replace('"n": 1, "extra": ""',
                                                 '"n": 1, "extra": "MOCK_BATCH=errored"')
                        .replace('"n": 2, "extra": ""', '"n": 2, "extra": "MOCK_BATCH=expired"'))
        assert run(root, tmp_path / "b.db", "run.batch=true") == "completed"
        # A first batch per model, then one retry batch per model (max_attempts=2).
        assert server.state.counts["batches:created"] == 4
    with sqlite3.connect(tmp_path / "b.db") as conn:
        bad = conn.execute("select t.model_alias, t.row_id, r.error_kind, r.error, r.attempts "
                           "from results r join trials t using (run_id, idx) "
                           "where r.status != 'ok' order by 1, 2").fetchall()
        assert conn.execute("select count(*) from results where status='ok'").fetchone() == (8,)
        rounds = conn.execute("select round, request_count from batches order by number"
                              ).fetchall()
    assert sorted(rounds) == [(1, 6), (1, 6), (2, 2), (2, 2)]
    assert [(m, r, k, n) for m, r, k, _, n in bad] == [
        ("an", "r1", "batch_errored", 2), ("an", "r2", "batch_expired", 2),
        ("oa", "r1", "batch_errored", 2), ("oa", "r2", "batch_expired", 2)]
    reasons = {(m, r): e for m, r, _, e, _ in bad}
    assert "api_error" in reasons[("an", "r1")]
    assert "500" in reasons[("oa", "r1")]
    assert "batch_expired" in reasons[("oa", "r2")]


def test_a_model_without_a_batch_api_is_one_line_before_any_request(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with MockServer(MockConfig()) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=2)
        cfg = root / "experiments/config.yaml"
        cfg.write_text(cfg.read_text().replace("provider: anthropic", "provider: http\n"
                       "    http: {body: '{}', output_path: x}"))
        prepared = prepared_for(root, "run.batch=true")
        with Store.open(str(tmp_path / "x.db")) as store, pytest.raises(UserError) as err:
            Session(store, prepared.spec, prepared.renderer).run(
                NewRun(config=prepared.loaded.config))
        assert "has no batch API" in str(err.value) and "\n" not in str(err.value)
        assert server.request_count == 0
        # Opted out, the model goes call by call and the other by batch.
        assert run(root, tmp_path / "y.db", "run.batch=true", "models.an.batch=false",
                   run_id="r2") == "completed"
        assert server.state.counts["batches:created"] == 1
    assert main(["batches", "r2", "--db", str(tmp_path / "y.db")]) == 0
    assert "batch_mock" in capsys.readouterr().out
