"""Aggregation: results grouped by any grid dimension, with the numbers a report shows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, select

from promptlab.reports.stats import bootstrap_mean_ci, wilson
from promptlab.store.models import Result, Score, TrialRow
from promptlab.store.queries import ResultRow

__all__ = ["GroupStats", "aggregate", "aggregate_runs", "percentile", "dimension_value"]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def dimension_value(row: ResultRow, dim: str) -> Any:
    if dim == "model":
        return row.model_alias
    if dim == "prompt":
        return row.prompt
    if dim == "row":
        return row.row_id
    if dim == "repeat":
        return row.repeat
    return row.params.get(dim)


@dataclass
class GroupStats:
    key: tuple[Any, ...]
    calls: int = 0
    ok: int = 0
    errors: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    ttfts: list[float] = field(default_factory=list, repr=False)
    score_values: dict[str, list[float]] = field(default_factory=dict, repr=False)
    score_passed: dict[str, list[bool]] = field(default_factory=dict, repr=False)

    def score_summary(self, name: str) -> dict[str, Any]:
        """Pass rate with a Wilson interval, or mean with a bootstrap interval."""
        passed = self.score_passed.get(name, [])
        if passed:
            k, n = sum(passed), len(passed)
            lo, hi = wilson(k, n)
            return {"kind": "pass_rate", "value": k / n, "lo": lo, "hi": hi, "n": n}
        values = self.score_values.get(name, [])
        if values:
            lo, hi = bootstrap_mean_ci(values)
            return {"kind": "mean", "value": sum(values) / len(values), "lo": lo, "hi": hi,
                    "n": len(values)}
        return {"kind": None, "value": None, "lo": None, "hi": None, "n": 0}

    @property
    def latency_p50(self) -> float | None:
        return percentile(sorted(self.latencies), 50)

    @property
    def latency_p95(self) -> float | None:
        return percentile(sorted(self.latencies), 95)

    def as_dict(self, dims: Sequence[str], scorers: Sequence[str] = ()) -> dict[str, Any]:
        out: dict[str, Any] = dict(zip(dims, self.key, strict=True))
        for name in scorers:
            s = self.score_summary(name)
            out[f"{name}"] = _round4(s["value"])
            out[f"{name}_lo"] = _round4(s["lo"])
            out[f"{name}_hi"] = _round4(s["hi"])
            out[f"{name}_n"] = s["n"]
        out.update(calls=self.calls, ok=self.ok, errors=self.errors, cached=self.cached,
                   latency_p50_ms=_round(self.latency_p50), latency_p95_ms=_round(self.latency_p95),
                   ttft_p50_ms=_round(percentile(sorted(self.ttfts), 50)),
                   ttft_p95_ms=_round(percentile(sorted(self.ttfts), 95)),
                   input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                   cost_usd=round(self.cost_usd, 6))
        return out


def _round4(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def aggregate(rows: Iterable[ResultRow], dims: Sequence[str]) -> list[GroupStats]:
    groups: dict[tuple[Any, ...], GroupStats] = {}
    for row in rows:
        key = tuple(dimension_value(row, d) for d in dims)
        g = groups.get(key)
        if g is None:
            g = groups[key] = GroupStats(key)
        g.calls += 1
        if row.status == "ok":
            g.ok += 1
            if row.latency_ms is not None and not row.cache_hit:
                g.latencies.append(row.latency_ms)
            if row.ttft_ms is not None and not row.cache_hit:
                g.ttfts.append(row.ttft_ms)
        else:
            g.errors += 1
        if row.cache_hit:
            g.cached += 1
        for name, (value, passed) in row.scores.items():
            if passed is not None:
                g.score_passed.setdefault(name, []).append(passed)
            if value is not None:
                g.score_values.setdefault(name, []).append(value)
        g.input_tokens += row.input_tokens or 0
        g.output_tokens += row.output_tokens or 0
        g.cost_usd += row.cost_usd or 0.0
    return sorted(groups.values(), key=lambda g: tuple(_sort_key(v) for v in g.key))


def _sort_key(v: Any) -> tuple[int, Any]:
    if v is None:
        return (0, "")
    if isinstance(v, int | float):
        return (1, v)
    return (2, str(v))


def aggregate_runs(engine: Engine, run_ids: Sequence[str], dims: Sequence[str]
                   ) -> list[GroupStats]:
    """`aggregate` for whole runs, reading plain tuples straight from SQL.

    A report over a million results spends its time in per-row Python objects; here each
    result is one tuple and one dict lookup, and scores come in a second pass.
    """
    extra_cols = [c for d, c in (("row", TrialRow.row_id), ("repeat", TrialRow.repeat))
                  if d in dims]
    key_cols = [TrialRow.model_alias, TrialRow.prompt, TrialRow.params_json, *extra_cols]
    n_key = len(key_cols)
    keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    groups: dict[tuple[Any, ...], GroupStats] = {}

    def group_of(raw: tuple[Any, ...]) -> GroupStats:
        key = keys.get(raw)
        if key is None:
            model, prompt, params_json = raw[0], raw[1], raw[2]
            params = json.loads(params_json)
            rest = dict(zip([d for d in ("row", "repeat") if d in dims], raw[3:], strict=True))
            values = []
            for d in dims:
                if d == "model":
                    values.append(model)
                elif d == "prompt":
                    values.append(prompt)
                elif d in rest:
                    values.append(rest[d])
                else:
                    values.append(params.get(d))
            key = keys[raw] = tuple(values)
        g = groups.get(key)
        if g is None:
            g = groups[key] = GroupStats(key)
        return g

    join = (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx)
    stmt = (select(*key_cols, Result.status, Result.cache_hit, Result.latency_ms,
                   Result.ttft_ms, Result.input_tokens, Result.output_tokens, Result.cost_usd)
            .join(Result, join).where(TrialRow.run_id.in_(list(run_ids))))
    score_stmt = (select(*key_cols, Score.scorer, Score.value, Score.passed)
                  .join(Score, (Score.run_id == TrialRow.run_id) & (Score.idx == TrialRow.idx))
                  .where(TrialRow.run_id.in_(list(run_ids))))
    with engine.connect() as conn:
        for row in conn.execute(stmt).yield_per(20_000):
            g = group_of(tuple(row[:n_key]))
            status, hit, latency, ttft, tin, tout, cost = cast(tuple[Any, ...], row[n_key:])
            g.calls += 1
            if status == "ok":
                g.ok += 1
                if not hit:
                    if latency is not None:
                        g.latencies.append(latency)
                    if ttft is not None:
                        g.ttfts.append(ttft)
            else:
                g.errors += 1
            if hit:
                g.cached += 1
            g.input_tokens += tin or 0
            g.output_tokens += tout or 0
            g.cost_usd += cost or 0.0
        for row in conn.execute(score_stmt).yield_per(20_000):
            g = group_of(tuple(row[:n_key]))
            name, value, passed = cast(tuple[Any, ...], row[n_key:])
            if passed is not None:
                g.score_passed.setdefault(name, []).append(bool(passed))
            if value is not None:
                g.score_values.setdefault(name, []).append(value)
    return sorted(groups.values(), key=lambda g: tuple(_sort_key(v) for v in g.key))
