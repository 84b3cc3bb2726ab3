"""Aggregation: results grouped by any grid dimension, with the numbers a report shows."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from promptlab.canonical import canonical_json
from promptlab.reports.stats import bootstrap_mean_ci, wilson
from promptlab.store.queries import ScoredResult

if TYPE_CHECKING:
    from promptlab.store import Store
    from promptlab.store.cells import Cells

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
    tool_calls: int = 0  # ok results with at least one tool call
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    # Latencies and TTFTs come loose (rows) or as sorted runs (report cells); two groups
    # are equal when the values are, however they came (`__eq__`).
    latencies: list[float] = field(default_factory=list, repr=False, compare=False)
    ttfts: list[float] = field(default_factory=list, repr=False, compare=False)
    latency_runs: list[Sequence[float]] = field(default_factory=list, repr=False,
                                                compare=False)
    ttft_runs: list[Sequence[float]] = field(default_factory=list, repr=False, compare=False)
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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupStats):
            return NotImplemented
        same = all(getattr(self, f.name) == getattr(other, f.name)
                   for f in fields(self) if f.compare)
        return same and (list(self.sorted_latencies()) == list(other.sorted_latencies())
                         and list(_sorted(self.ttfts, self.ttft_runs))
                         == list(_sorted(other.ttfts, other.ttft_runs)))

    __hash__ = None  # type: ignore[assignment]

    def sorted_latencies(self) -> Sequence[float]:
        """The ok, non-cached latencies of the group, in order."""
        return _sorted(self.latencies, self.latency_runs)

    @property
    def latency_p50(self) -> float | None:
        return percentile(self.sorted_latencies(), 50)

    @property
    def latency_p95(self) -> float | None:
        return percentile(self.sorted_latencies(), 95)

    def as_dict(self, dims: Sequence[str], scorers: Sequence[str] = ()) -> dict[str, Any]:
        out: dict[str, Any] = dict(zip(dims, self.key, strict=True))
        for name in scorers:
            s = self.score_summary(name)
            out[f"{name}"] = _round4(s["value"])
            out[f"{name}_lo"] = _round4(s["lo"])
            out[f"{name}_hi"] = _round4(s["hi"])
            out[f"{name}_n"] = s["n"]
        latencies = self.sorted_latencies()
        ttfts = _sorted(self.ttfts, self.ttft_runs)
        out.update(calls=self.calls, ok=self.ok, errors=self.errors, cached=self.cached,
                   latency_p50_ms=_round(percentile(latencies, 50)),
                   latency_p95_ms=_round(percentile(latencies, 95)),
                   ttft_p50_ms=_round(percentile(ttfts, 50)),
                   ttft_p95_ms=_round(percentile(ttfts, 95)),
                   tool_call_rate=_round4(self.tool_calls / self.ok) if self.ok else None,
                   input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                   reasoning_tokens=self.reasoning_tokens,
                   cached_input_tokens=self.cached_input_tokens,
                   cache_write_tokens=self.cache_write_tokens,
                   cost_usd=round(self.cost_usd, 6))
        return out


def _sorted(loose: list[float], runs: list[Sequence[float]]) -> Sequence[float]:
    """Every value in order; one sorted run alone is used as it is (no million-item copy)."""
    if not loose and len(runs) == 1:
        return runs[0]
    return sorted(itertools.chain(loose, *runs))


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
    """`aggregate` for whole runs: from the runs' report cells when every run has them and
    no dimension splits a cell (row, repeat), else from the rows the store groups in SQL.
    Both give the same numbers (tests/test_report_cells.py)."""
    cells = None if {"row", "repeat"} & set(dims) else store.cells(run_ids)
    groups = _Groups(dims)
    if cells is None:
        groups.add_rows(store, run_ids)
    else:
        groups.add_cells(cells)
    return sorted(groups.groups.values(), key=lambda g: tuple(_sort_key(v) for v in g.key))


def _hashable(value: Any) -> Any:
    """A grid value as a group key: a list or mapping (stop sequences, a JSON schema) by
    its canonical JSON text."""
    return canonical_json(value) if isinstance(value, list | dict) else value


class _Groups:
    """Group statistics keyed by the report's dimensions, fed rows or cells."""

    def __init__(self, dims: Sequence[str]) -> None:
        self.dims = list(dims)
        self.extra = [d for d in ("row", "repeat") if d in dims]
        self.keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.groups: dict[tuple[Any, ...], GroupStats] = {}

    def of(self, raw: tuple[Any, ...]) -> GroupStats:
        """The group of a (model alias, prompt, params JSON[, row][, repeat]) key."""
        key = self.keys.get(raw)
        if key is None:
            params = json.loads(raw[2])
            rest = dict(zip(self.extra, raw[3:], strict=True))
            named = {"model": raw[0], "prompt": raw[1], **rest}
            key = self.keys[raw] = tuple(named[d] if d in named else _hashable(params.get(d))
                                         for d in self.dims)
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = GroupStats(key)
        return g

    @staticmethod
    def add_sums(g: GroupStats, sums: Sequence[Any]) -> None:
        calls, n_ok, n_hit, n_tools, tin, tout, reasoning, cached_in, cache_write, cost = sums
        g.calls += calls
        g.ok += n_ok or 0
        g.errors += calls - (n_ok or 0)
        g.cached += n_hit or 0
        g.tool_calls += n_tools or 0
        g.input_tokens += tin or 0
        g.output_tokens += tout or 0
        g.reasoning_tokens += reasoning or 0
        g.cached_input_tokens += cached_in or 0
        g.cache_write_tokens += cache_write or 0
        g.cost_usd += cost or 0.0

    def add_rows(self, store: Store, run_ids: Sequence[str]) -> None:
        n_key = 3 + len(self.extra)
        for kind, row in store.grouped_rows(run_ids, "row" in self.dims,
                                            "repeat" in self.dims):
            g = self.of(row[:n_key])
            rest = row[n_key:]
            if kind == "sums":
                self.add_sums(g, rest)
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

    def add_cells(self, cells: Cells) -> None:
        for row in cells.results:
            g = self.of(row[1:4])
            self.add_sums(g, row[4:14])
            for runs, values in ((g.latency_runs, row[14]), (g.ttft_runs, row[15])):
                if values:
                    runs.append(values)
        # Mean-type values in (run, trial index) order, as the row path reads them.
        pieces: dict[tuple[int, str], list[tuple[str, Any, Any]]] = {}
        for run_id, model, prompt, params, name, n, k, idxs, vals in cells.scores:
            g = self.of((model, prompt, params))
            if n:
                prev_k, prev_n = g.score_counts.get(name, (0, 0))
                g.score_counts[name] = (prev_k + k, prev_n + n)
            if vals:
                pieces.setdefault((id(g), name), []).append((run_id, idxs, vals))
                g.score_values.setdefault(name, [])
        by_id = {id(g): g for g in self.groups.values()}
        for (gid, name), parts in pieces.items():
            if len(parts) == 1:
                values = list(parts[0][2])
            else:
                merged = sorted((run_id, i, v) for run_id, idxs, vals in parts
                                for i, v in zip(idxs, vals, strict=True))
                values = [v for _, _, v in merged]
            by_id[gid].score_values[name] = values
