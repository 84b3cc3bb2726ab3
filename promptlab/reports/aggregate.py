"""Aggregation: results grouped by any grid dimension, with the numbers a report shows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptlab.reports.stats import bootstrap_mean_ci, wilson
from promptlab.store.queries import ScoredResult

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["GroupStats", "aggregate", "aggregate_runs", "percentile", "dimension_value"]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def dimension_value(row: ScoredResult, dim: str) -> Any:
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
    score_counts: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def score_summary(self, name: str) -> dict[str, Any]:
        """Pass rate with a Wilson interval, or mean with a bootstrap interval."""
        passed = self.score_passed.get(name, [])
        k, n = self.score_counts.get(name, (0, 0))
        k, n = k + sum(passed), n + len(passed)
        if n:
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


def aggregate(rows: Iterable[ScoredResult], dims: Sequence[str]) -> list[GroupStats]:
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


def aggregate_runs(store: Store, run_ids: Sequence[str], dims: Sequence[str]
                   ) -> list[GroupStats]:
    """`aggregate` for whole runs, from the grouped rows the store counts in SQL."""
    extra_dims = [d for d in ("row", "repeat") if d in dims]
    n_key = 3 + len(extra_dims)
    keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    groups: dict[tuple[Any, ...], GroupStats] = {}

    def group_of(raw: tuple[Any, ...]) -> GroupStats:
        key = keys.get(raw)
        if key is None:
            params = json.loads(raw[2])
            rest = dict(zip(extra_dims, raw[3:], strict=True))
            named = {"model": raw[0], "prompt": raw[1], **rest}
            key = keys[raw] = tuple(named[d] if d in named else params.get(d) for d in dims)
        g = groups.get(key)
        if g is None:
            g = groups[key] = GroupStats(key)
        return g

    for kind, row in store.grouped_rows(run_ids, "row" in dims, "repeat" in dims):
        g = group_of(row[:n_key])
        rest = row[n_key:]
        if kind == "sums":
            calls, n_ok, n_hit, tin, tout, cost = rest
            g.calls += calls
            g.ok += n_ok or 0
            g.errors += calls - (n_ok or 0)
            g.cached += n_hit or 0
            g.input_tokens += tin or 0
            g.output_tokens += tout or 0
            g.cost_usd += cost or 0.0
        elif kind == "timings":
            latency, ttft = rest
            if latency is not None:
                g.latencies.append(latency)
            if ttft is not None:
                g.ttfts.append(ttft)
        elif kind == "passes":
            name, n, k = rest
            prev_k, prev_n = g.score_counts.get(name, (0, 0))
            g.score_counts[name] = (prev_k + (k or 0), prev_n + n)
        else:
            g.score_values.setdefault(rest[0], []).append(rest[1])
    return sorted(groups.values(), key=lambda g: tuple(_sort_key(v) for v in g.key))
