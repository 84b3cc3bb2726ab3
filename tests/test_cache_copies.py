"""A cache hit is stored as a copy of the result it repeats, made in the database
(`copy_results`): every answer column the same, its own run, index, time and source, no
cost, no latency, no attempts; it replaces a stored result that is not ok, never an ok one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from test_store_queries import T0, _record

from promptlab.store import Record, Store
from promptlab.store.replace import COPIED

DETAILS = {"tool_calls_json": '[{"name": "f", "arguments": {"x": 1}}]',
           "parsed_json": '{"a": 1}', "reasoning": "thought ü \U0001f600",
           "reasoning_tokens": 7, "cached_input_tokens": 2, "cache_write_tokens": 1}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(str(tmp_path / "c.db"))
    for run_id in ("src", "dst"):
        s.create_run(run_id=run_id, name=run_id, planned=3, config={}, overrides=[],
                     manifest={}, artifacts={})
    source = _record("src", 0, model="x", row="r1", output="the answer\x01 ü")
    source.result.update(DETAILS, fingerprint="fp_1", response_model="api-x-0613")
    s.write([source])
    yield s
    s.close()


def _rows(store: Store, run_id: str) -> dict[int, dict[str, object]]:
    with store.engine.connect() as conn:
        return {r["idx"]: dict(r) for r in conn.execute(
            text("SELECT * FROM results WHERE run_id = :r"), {"r": run_id}).mappings()}


def _hit(idx: int, *, trial_exists: bool = False) -> Record:
    trial = _record("dst", idx, model="x", row="r1").trial
    result = {"run_id": "dst", "idx": idx, "status": "ok", "cache_source": "src:0",
              "finished_at": T0}
    return Record(trial, result, [], trial_exists, copy_of=("src", 0))


def test_a_hit_copies_every_answer_column_and_keeps_its_own(store: Store) -> None:
    store.write([_hit(0), _hit(1)])
    src, dst = _rows(store, "src")[0], _rows(store, "dst")
    assert sorted(dst) == [0, 1]
    for row in dst.values():
        assert {c: row[c] for c in COPIED} == {c: src[c] for c in COPIED}
        assert row["output"] == "the answer\x01 ü" and row["reasoning"] == DETAILS["reasoning"]
        assert (row["status"], row["cost_usd"], row["attempts"], row["latency_ms"],
                row["error"], row["cache_hit"], row["cacheable"], row["cache_source"]) == (
            "ok", 0.0, 0, None, None, 1, 0, "src:0")
    with store.engine.connect() as conn:  # no attempts were made for a hit
        assert conn.execute(text("SELECT count(*) FROM attempts WHERE run_id = 'dst'")
                            ).scalar() == 0


def test_a_hit_replaces_an_error_result_but_never_an_ok_one(store: Store) -> None:
    store.write([_record("dst", 0, model="x", row="r1", status="error"),
                 _record("dst", 1, model="x", row="r1", output="kept")])
    store.write([_hit(0, trial_exists=True), _hit(1, trial_exists=True)])
    dst = _rows(store, "dst")
    assert (dst[0]["status"], dst[0]["output"], dst[0]["cache_hit"]) == (
        "ok", "the answer\x01 ü", 1)
    assert (dst[1]["output"], dst[1]["cache_hit"]) == ("kept", 0)


def test_cache_sources_name_the_newest_fresh_ok_result(store: Store) -> None:
    later = _record("dst", 0, model="x", row="r1", output="newer",
                    cache_key="cxr10.0", at=T0.replace(hour=13))
    store.write([later, _record("dst", 1, model="x", row="r1", status="error",
                                cache_key="cxr10.0", at=T0.replace(hour=14))])
    key = "cxr10.0"
    assert store.cache_sources([key, key, "unknown"]) == {key: ("dst", 0)}


def test_a_hit_whose_source_was_deleted_meanwhile_is_an_error_that_resume_sends(
        store: Store) -> None:
    gone = _hit(0)
    gone.copy_of = ("src", 99)  # as if its run were deleted between lookup and write
    gone.result["cache_source"] = "src:99"
    store.write([gone, _hit(1)])
    dst = _rows(store, "dst")
    assert (dst[0]["status"], dst[0]["error_kind"], dst[0]["attempts"]) == (
        "error", "transient", 0)
    assert "src:99" in str(dst[0]["error"]) and dst[1]["status"] == "ok"
    prior = store.progress_of("dst")
    assert prior.done == {1} and prior.started == {0: 0}
