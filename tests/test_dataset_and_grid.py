from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from promptlab.dataset import load_dataset
from promptlab.errors import UserError
from promptlab.grid import Plan
from promptlab.spec import (
    DatasetSpec,
    ExperimentSpec,
    GridSpec,
    MessageSpec,
    ModelSpec,
    PromptSpec,
    Row,
    RunSettings,
)


def test_jsonl_csv_and_inline_rows_get_stable_ids(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": "q1", "x": 1}\n\n{"id": "q2", "x": 2}\n')
    (tmp_path / "b.csv").write_text("x,y\n1,2\n3,4\n")
    js, text = load_dataset({"path": "a.jsonl"}, tmp_path, "w")
    assert [r.id for r in js.rows] == ["q1", "q2"] and text is not None
    csv1, _ = load_dataset({"path": "b.csv"}, tmp_path, "w")
    (tmp_path / "b.csv").write_text("x,y\n3,4\n1,2\n")
    csv2, _ = load_dataset({"path": "b.csv"}, tmp_path, "w")
    # Content-derived ids survive reordering the file.
    assert {r.id: r.data for r in csv1.rows} == {r.id: r.data for r in csv2.rows}
    inline, _ = load_dataset({"rows": [{"a": 1}, {"a": 1}]}, tmp_path, "w")
    assert inline.rows[1].id == inline.rows[0].id + "-2"


def test_duplicate_explicit_ids_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="appears twice"):
        load_dataset({"rows": [{"id": 1}, {"id": 1}]}, tmp_path, "w")


def spec(n_rows: int, temps: tuple[float, ...] = (0.0, 1.0), repeats: int = 2) -> ExperimentSpec:
    models = (ModelSpec("a", "openai", "m1", None), ModelSpec("b", "anthropic", "m2", None))
    prompts = (PromptSpec("p", (MessageSpec("user", "{{ x }}"),)),)
    rows = tuple(Row(str(i), i, {"x": i}) for i in range(n_rows))
    return ExperimentSpec("t", models, prompts, DatasetSpec("d", None, rows),
                          GridSpec({"temperature": temps, "seed": (1, 2)}, repeats),
                          RunSettings())


def test_plan_order_is_deterministic_and_indexable() -> None:
    plan = Plan(spec(3))
    trials = list(plan)
    assert len(trials) == len(plan) == 2 * 4 * 3 * 2
    assert [t.index for t in trials] == list(range(len(plan)))
    assert all(plan.trial(t.index) == t for t in trials)
    # models, then prompts, then grid points (keys sorted), then rows, then repeats.
    first = [(t.model.alias, t.params["seed"], t.params["temperature"], t.row.id, t.repeat)
             for t in trials[:5]]
    assert first == [("a", 1, 0.0, "0", 0), ("a", 1, 0.0, "0", 1), ("a", 1, 0.0, "1", 0),
                     ("a", 1, 0.0, "1", 1), ("a", 1, 0.0, "2", 0)]
    assert len({t.key for t in trials}) == len(trials)
    assert [t.key for t in Plan(spec(3))] == [t.key for t in trials]


def test_trial_key_ignores_row_position_but_not_content() -> None:
    a = Plan(spec(3)).trial(0)
    other = spec(3, temps=(0.0, 0.5))
    assert Plan(other).trial(0).key == a.key  # same model, params, row, repeat
    assert Plan(spec(3, temps=(0.5, 1.0))).trial(0).key != a.key


def test_million_trial_plan_is_lazy() -> None:
    tracemalloc.start()
    plan = Plan(spec(1, temps=tuple(i / 1000 for i in range(125_000))))
    n = len(plan)
    first, last = plan.trial(0), plan.trial(-1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 1_000_000
    assert first.index == 0 and last.index == n - 1 and last.model.alias == "b"
    assert peak < 50 * 1024 * 1024


def test_fingerprint_from_parts_equals_the_canonical_contract() -> None:
    from promptlab.cache import fingerprint, fingerprint_from_parts
    from promptlab.canonical import canonical_json

    model = ModelSpec("a", "openai", "m\u00e9", "http://x/v1")
    messages = [{"role": "user", "content": "caf\u00e9 \"q\" {x}"}]
    params = {"temperature": 0.5, "max_tokens": 3, "stop": ["\n"]}
    assert fingerprint_from_parts(model, canonical_json(messages), canonical_json(params),
                                  2) == fingerprint(model, messages, params, 2)


def test_fingerprints_of_one_models_messages_equal_the_canonical_contract() -> None:
    """`plan`'s estimate hashes a cell's messages once for every grid point and repeat."""
    from promptlab.cache import fingerprint, fingerprints_of
    from promptlab.canonical import canonical_json

    models = [ModelSpec("a", "openai", "m\u00e9", "http://x/v1"),
              ModelSpec("b", "openai", "m", "http://x/v1", endpoint="completions")]
    messages = [{"role": "user", "content": "caf\u00e9 \"q\" {x} \U0001f600"}]
    grid = [{"temperature": 0.5, "max_tokens": 3, "stop": ["\n"]}, {}, {"seed": 10 ** 20}]
    for model in models:
        of = fingerprints_of(model, canonical_json(messages))
        keys = {of(canonical_json(p), r) for p in grid for r in (0, 1, 12)}
        assert keys == {fingerprint(model, messages, p, r) for p in grid for r in (0, 1, 12)}
        assert len(keys) == 9
