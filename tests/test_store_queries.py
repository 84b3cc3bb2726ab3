"""The Store's reads on a small database written through its own writes (no HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from promptlab.errors import UserError
from promptlab.reports.aggregate import aggregate_runs
from promptlab.store import Record, Store

T0 = datetime(2026, 11, 25, 12, 0, 0)


def _record(run_id: str, idx: int, *, model: str, row: str, status: str = "ok",
            output: str | None = "out", temperature: float = 0.0, latency: float = 10.0,
            cache_key: str | None = None, at: datetime = T0) -> Record:
    trial = {"run_id": run_id, "idx": idx, "key": f"k{run_id}{idx}", "model_alias": model,
             "provider": "openai", "model": f"api-{model}", "prompt": "p",
             "params_json": f'{{"temperature": {temperature}}}', "row_id": row,
             "row_json": f'{{"id": "{row}"}}', "repeat": 0,
             "messages_json": '[{"role": "user", "content": "hi"}]', "endpoint": "e",
             "cache_key": cache_key or f"c{model}{row}{temperature}"}
    ok = status == "ok"
    result = {"run_id": run_id, "idx": idx, "status": status, "output": output if ok else None,
              "finish_reason": "stop", "input_tokens": 3, "output_tokens": 2,
              "latency_ms": latency, "ttft_ms": None, "tokens_per_s": None, "cost_usd": 0.001,
              "attempts": 1, "response_model": model, "fingerprint": None,
              "error_kind": None if ok else "fatal", "error": None if ok else "HTTP 400",
              "cache_hit": False, "cacheable": ok, "cache_source": None, "finished_at": at}
    attempt = {"run_id": run_id, "idx": idx, "number": 1, "started_at": at,
               "duration_ms": latency, "url": "http://127.0.0.1/v1/chat/completions",
               "request_headers_json": "{}", "request_body": '{"model": "m"}',
               "status_code": 200 if ok else 400, "response_body": '{"choices": []}',
               "error_kind": None, "error": None, "retry_after_ms": None}
    return Record(trial, result, [attempt])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(str(tmp_path / "q.db"))
    for run_id, when in (("run-a", T0), ("run-b", T0 + timedelta(hours=1))):
        s.create_run(run_id=run_id, name=f"name-{run_id}", planned=4,
                     config={"models": {"x": {}, "y": {}}}, overrides=["grid.repeats=1"],
                     manifest={"host": "h"}, artifacts={"template:ask.j2": "Q {{ q }}"},
                     sweep_id="sw1" if run_id == "run-a" else None)
        s.write([_record(run_id, 0, model="x", row="r1", at=when),
                 _record(run_id, 1, model="x", row="r2", temperature=1.0, latency=30.0,
                         at=when),
                 _record(run_id, 2, model="y", row="r1", at=when),
                 _record(run_id, 3, model="y", row="r2", status="error", at=when)])
        s.finish_run(run_id, "completed")
    s.replace_scores("run-a", ["exact"], [
        {"run_id": "run-a", "idx": i, "scorer": "exact", "value": float(i % 2),
         "passed": bool(i % 2), "detail_json": '{"why": "test"}'} for i in range(3)])
    yield s
    s.close()


def test_runs_are_listed_newest_first_and_filtered(store: Store) -> None:
    assert [r.id for r in store.runs()] == ["run-b", "run-a"]
    assert [r.id for r in store.runs(sweep="sw1")] == ["run-a"]
    assert [r.id for r in store.runs(name="run-b")] == ["run-b"]
    assert store.runs(status="running") == []


def test_run_ids_resolve_from_prefix_and_latest(store: Store) -> None:
    assert store.resolve_run_id("latest") == "run-b"
    assert store.resolve_run_id("run-a") == "run-a"
    with pytest.raises(UserError, match="ambiguous"):
        store.resolve_run_id("run-")
    with pytest.raises(UserError, match="not found"):
        store.resolve_run_id("zzz")
    # A prefix is text, not a LIKE pattern: '_' and '%' match only themselves.
    with pytest.raises(UserError, match="not found"):
        store.resolve_run_id("run_a")
    with pytest.raises(UserError, match="not found"):
        store.resolve_run_id("%a")


def test_run_info_counts_done_and_errors(store: Store) -> None:
    info = store.run("run-a")
    assert (info.planned, info.done, info.errors, info.status) == (4, 4, 1, "completed")
    assert info.overrides == ["grid.repeats=1"] and info.manifest == {"host": "h"}
    assert store.status_counts("run-a") == ({"ok": 3, "error": 1}, 4, 0)
    assert store.artifacts("run-a") == {"template:ask.j2": "Q {{ q }}"}


def test_results_carry_params_and_scores(store: Store) -> None:
    rows = list(store.results("run-a"))
    assert [r.idx for r in rows] == [0, 1, 2, 3]
    assert rows[1].params == {"temperature": 1.0}
    assert rows[1].scores == {"exact": (1.0, True)}
    assert rows[3].status == "error" and rows[3].scores == {}
    assert store.scorer_names("run-a") == ["exact"] and store.scorer_names("run-b") == []
    assert store.score_details("run-a")[0]["exact"]["detail"] == {"why": "test"}


def test_grouped_rows_aggregate_like_the_rows_themselves(store: Store) -> None:
    by_model = {g.key: g for g in aggregate_runs(store, ["run-a"], ["model"])}
    assert by_model[("x",)].calls == 2 and by_model[("x",)].ok == 2
    assert by_model[("y",)].errors == 1
    assert list(by_model[("x",)].sorted_latencies()) == [10.0, 30.0]
    assert by_model[("x",)].score_summary("exact")["value"] == 0.5
    by_temp = {g.key: g for g in aggregate_runs(store, ["run-a", "run-b"], ["temperature"])}
    assert by_temp[(1.0,)].calls == 2 and by_temp[(0.0,)].calls == 6


def test_one_trials_detail_and_its_cache_candidates(store: Store) -> None:
    t = store.trial_detail("run-b", "2")
    assert (t["model_alias"], t["row_id"], t["status"]) == ("y", "r1", "ok")
    assert t["fields"]["params"] == {"temperature": 0.0}
    candidates: list[dict[str, Any]] = store.cache_candidates(t)
    # Only what was stored before this trial's result could have served it: run-a's trials
    # on the same row, not run-b's own siblings (finished with it, not before it).
    assert {(c["run_id"], c["idx"]) for c in candidates} == {("run-a", 0), ("run-a", 2)}
    with pytest.raises(UserError, match="not found"):
        store.trial_detail("run-b", "99")


def test_export_and_notebook_rows(store: Store) -> None:
    exported = list(store.export_rows("run-a"))
    assert len(exported) == 4
    assert exported[0]["request"]["url"].endswith("/chat/completions")
    assert exported[3]["result"]["status"] == "error"
    table = list(store.result_table("run-a"))
    assert table[1]["temperature"] == 1.0 and table[1]["row.id"] == "r2"
    assert [it["idx"] for it in store.ok_outputs("run-a")] == [0, 1, 2]
    assert len(store.report_outputs("run-a", limit=2)) == 2
    assert store.trials_with_last_request("run-a")[0]["request_body"] == '{"model": "m"}'


def test_resume_bookkeeping_keeps_failed_results(store: Store) -> None:
    prior = store.progress_of("run-a")
    assert prior.done == {0, 1, 2} and prior.started == {3: 1}
    assert prior.cost_usd == pytest.approx(0.003) and prior.calls == 4
    # The error result stays (a resume that fails loses nothing) until a new one replaces it.
    assert store.run("run-a").done == 4
