"""Report cells (store/cells.py): a report read from them is the report read from the rows,
and any write to a run's results or scores drops them, whatever code writes."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from promptlab.cli import main
from promptlab.reports.aggregate import aggregate_runs
from promptlab.reports.render import render_text
from promptlab.store import Record, Store

T0 = datetime(2026, 11, 25, 12, 0, 0)
CONFIG = {"models": {"x": {}, "y": {}}, "grid": {"params": {"temperature": [0.0, 1.0]}}}


def _record(run_id: str, idx: int, rng: random.Random) -> Record:
    model, prompt = rng.choice("xy"), rng.choice(["p", "q"])
    temperature, row, repeat = rng.choice([0.0, 1.0]), f"r{idx % 7}", idx % 3
    status = rng.choices(["ok", "error", "skipped"], [8, 2, 1])[0]
    ok = status == "ok"
    hit = ok and rng.random() < 0.2
    tools = ok and rng.random() < 0.3
    trial = {"run_id": run_id, "idx": idx, "key": f"k{run_id}{idx}", "model_alias": model,
             "provider": "openai", "model": f"api-{model}", "prompt": prompt,
             "params_json": json.dumps({"temperature": temperature}), "row_id": row,
             "row_json": json.dumps({"id": row}), "repeat": repeat,
             "messages_json": '[{"role": "user", "content": "hi"}]', "endpoint": "e",
             "cache_key": f"c{run_id}{idx}"}
    result = {"run_id": run_id, "idx": idx, "status": status, "output": "out" if ok else None,
              "finish_reason": "stop", "input_tokens": rng.randint(1, 50) if ok else None,
              "output_tokens": rng.randint(1, 20) if ok else None,
              "latency_ms": round(rng.uniform(5, 500), 3) if rng.random() < 0.95 else None,
              "ttft_ms": round(rng.uniform(1, 50), 3) if rng.random() < 0.5 else None,
              "tokens_per_s": None, "cost_usd": rng.uniform(0, 0.01) if ok else None,
              "attempts": 1, "response_model": model, "fingerprint": None,
              "error_kind": None if ok else "fatal", "error": None if ok else "HTTP 400",
              "cache_hit": hit, "cacheable": ok, "cache_source": "r0" if hit else None,
              "finished_at": T0,
              "tool_calls_json": '[{"name": "f", "arguments": {}}]' if tools else None,
              "parsed_json": None, "reasoning": None,
              "reasoning_tokens": rng.randint(0, 9) if ok and model == "y" else None,
              "cached_input_tokens": rng.randint(0, 5) if ok else None,
              "cache_write_tokens": rng.randint(0, 3) if ok and prompt == "q" else None}
    return Record(trial, result, [])


def _fill(store: Store, run_id: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    store.create_run(run_id=run_id, name=f"name-{run_id}", planned=n, config=CONFIG,
                     overrides=[], manifest={}, artifacts={})
    store.write([_record(run_id, i, rng) for i in range(n)])
    store.finish_run(run_id, "completed")
    store.replace_scores(run_id, ["exact", "similar"], [
        row for i in range(n) if rng.random() < 0.9 for row in (
            {"run_id": run_id, "idx": i, "scorer": "exact", "value": None,
             "passed": rng.random() < 0.6, "detail_json": None},
            {"run_id": run_id, "idx": i, "scorer": "similar", "value": rng.random(),
             "passed": None, "detail_json": None})])
    for i in range(0, n, 9):
        store.rate(run_id, i, up=i % 2 == 0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    path = tmp_path / "cells.db"
    store = Store.open(str(path))
    _fill(store, "run-a", 300, 1)
    _fill(store, "run-b", 200, 2)
    yield path, store
    store.close()


def _report(store: Store, run_ids: Sequence[str], dims: Sequence[str]) -> list[str]:
    groups = aggregate_runs(store, run_ids, dims)
    scorers = sorted({s for r in run_ids for s in store.scorer_names(r)})
    meta = {"run_id": "r", "name": "n", "status": "completed"}
    return [render_text(groups, dims, fmt, meta, scorers) for fmt in ("json", "csv", "markdown")]


def _drop_cells(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("delete from report_cells")
        conn.execute("delete from report_cell_scores")


def _count(path: Path, table: str, run_id: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"select count(*) from {table} where run_id = ?",
                                (run_id,)).fetchone()[0])


@pytest.mark.parametrize(("run_ids", "dims"), [
    (["run-a"], ["model", "prompt"]), (["run-a"], ["model"]), (["run-a"], ["temperature"]),
    (["run-a"], ["prompt", "temperature", "model"]), (["run-a", "run-b"], ["model"]),
    (["run-b", "run-a"], ["prompt", "temperature"])])
def test_a_report_from_cells_is_the_report_from_rows(
        db: tuple[Path, Store], run_ids: list[str], dims: list[str]) -> None:
    path, store = db
    assert store.cells(run_ids) is not None
    fast = _report(store, run_ids, dims)
    _drop_cells(path)
    assert store.cells(run_ids) is None
    slow = _report(store, run_ids, dims)
    assert fast == slow
    groups = json.loads(fast[0])["groups"]  # the fixture exercises what it should
    assert any(g["errors"] for g in groups) and any(g["cached"] for g in groups)
    assert any(g["human_n"] for g in groups) and all(g["similar_n"] for g in groups)
    assert all(g["latency_p95_ms"] is not None and g["ttft_p50_ms"] is not None
               for g in groups)


def test_row_and_repeat_dimensions_read_the_rows(db: tuple[Path, Store]) -> None:
    _, store = db
    by_row = {g.key: g.calls for g in aggregate_runs(store, ["run-a"], ["row", "repeat"])}
    assert sum(by_row.values()) == 300 and len(by_row) == 21


def _fresh(path: Path, store: Store, run_id: str) -> bool:
    """Whether the run has its cells, and the report equals the one from its rows."""
    has = store.cells([run_id]) is not None
    fast = _report(store, [run_id], ["model", "temperature"])
    _drop_cells(path)
    assert _report(store, [run_id], ["model", "temperature"]) == fast
    return has


@pytest.mark.parametrize("sql", [
    "update results set latency_ms = latency_ms + 1 where run_id = 'run-a' and idx = 5",
    "delete from results where run_id = 'run-a' and idx = 5",
    "update results set status = 'ok' where run_id = 'run-a' and status = 'error'"])
def test_any_write_to_a_runs_results_drops_its_cells(db: tuple[Path, Store], sql: str
                                                      ) -> None:
    path, store = db
    with sqlite3.connect(path) as conn:
        conn.execute("pragma foreign_keys=on")
        conn.execute("delete from scores where run_id = 'run-a' and idx = 5")
        conn.execute(sql)
    assert _count(path, "report_cells", "run-a") == 0
    assert _count(path, "report_cells", "run-b") > 0  # other runs keep theirs
    assert not _fresh(path, store, "run-a")


def test_a_write_to_scores_drops_the_score_cells_alone(db: tuple[Path, Store]) -> None:
    path, store = db
    with sqlite3.connect(path) as conn:
        conn.execute("update scores set value = 0.5 where run_id = 'run-a' and idx = 3")
    assert _count(path, "report_cell_scores", "run-a") == 0
    assert _count(path, "report_cells", "run-a") > 0
    assert not _fresh(path, store, "run-a")


def test_results_written_after_the_end_drop_the_cells_until_the_next_end(
        db: tuple[Path, Store]) -> None:
    path, store = db
    store.write([_record("run-a", 300, random.Random(5))])  # a late (resumed) trial
    assert store.cells(["run-a"]) is None
    store.finish_run("run-a", "completed")
    assert _fresh(path, store, "run-a")


def test_scoring_rating_and_unrating_refill_the_score_cells(db: tuple[Path, Store]) -> None:
    path, store = db
    store.replace_scores("run-a", ["exact"], [
        {"run_id": "run-a", "idx": i, "scorer": "exact", "value": None, "passed": i % 3 == 0,
         "detail_json": None} for i in range(300)])
    assert store.cells(["run-a"]) is not None
    store.rate("run-a", 4, up=False)
    assert store.cells(["run-a"]) is not None
    assert store.unrate("run-a", 0)
    assert _fresh(path, store, "run-a")


def test_resume_bookkeeping_keeps_the_results_and_the_cells(db: tuple[Path, Store]) -> None:
    path, store = db
    before = store.cells(["run-a"])
    store.progress_of("run-a")  # error results stay until their new results replace them
    assert store.cells(["run-a"]) == before
    assert _fresh(path, store, "run-a")


def test_a_merge_refills_the_cells_of_the_runs_it_touched(tmp_path: Path,
                                                         db: tuple[Path, Store]) -> None:
    path, store = db
    out = tmp_path / "merged.db"
    assert main(["merge", str(path), "-o", str(out)]) == 0
    merged = Store.open(str(out))
    try:
        assert merged.cells(["run-a", "run-b"]) is not None
        assert _fresh(out, merged, "run-b")
    finally:
        merged.close()


def test_run_counts_come_from_the_cells_and_agree_with_the_rows(db: tuple[Path, Store]
                                                                ) -> None:
    path, store = db
    info = store.run("run-a")
    _drop_cells(path)
    again = store.run("run-a")
    assert (info.done, info.errors) == (again.done, again.errors) == (300, again.errors)
    assert again.errors > 0


def test_a_run_without_results_reads_as_empty(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "e.db"))
    try:
        store.create_run(run_id="e", name="e", planned=0, config=CONFIG, overrides=[],
                         manifest={}, artifacts={})
        store.finish_run("e", "completed")
        cells: Any = store.cells(["e"])
        assert cells is not None and cells.results == [] and aggregate_runs(
            store, ["e"], ["model"]) == []
    finally:
        store.close()


def test_a_list_or_mapping_grid_value_groups_by_its_json(tmp_path: Path) -> None:
    # Found by the adversarial review: `report --by stop` crashed (unhashable type: 'list')
    # on both paths when a grid value was a list (stop sequences) or a mapping.
    store = Store.open(str(tmp_path / "lists.db"))
    store.create_run(run_id="r", name="n", planned=4, config=CONFIG, overrides=[],
                     manifest={}, artifacts={})
    records = []
    for idx, params in enumerate([{"stop": ["a", "b"]}, {"stop": ["a", "b"]},
                                  {"stop": {"x": 1}}, {"stop": None}]):
        record = _record("r", idx, random.Random(idx))
        record.trial["params_json"] = json.dumps(params)
        records.append(record)
    store.write(records)
    store.finish_run("r", "completed")
    fast = _report(store, ["r"], ["stop"])
    _drop_cells(tmp_path / "lists.db")
    assert _report(store, ["r"], ["stop"]) == fast
    keys = sorted(str(g["stop"]) for g in json.loads(fast[0])["groups"])
    assert keys == ['None', '["a","b"]', '{"x":1}'], keys
    store.close()


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_report_json_stays_json_when_a_scorer_returns_infinity(tmp_path: Path) -> None:
    # Found by the adversarial review: `report --format json` printed `Infinity`.
    store = Store.open(str(tmp_path / "inf.db"))
    _fill(store, "r", 20, 3)
    store.replace_scores("r", ["big"], [
        {"run_id": "r", "idx": i, "scorer": "big", "value": float("inf") if i % 2 else 1.0,
         "passed": None, "detail_json": None} for i in range(20)])
    report = _strict(_report(store, ["r"], ["model"])[0])
    assert all(g["big"] is None or isinstance(g["big"], float) for g in report["groups"])
    store.close()
