"""Paired comparison of two groups (of one run, or of two runs) on the same items.

An item is what a comparison is about: a dataset row x prompt x repeat x the grid's swept
params (the run config's ``grid.params`` keys), and within one run also the model. The
params a model fixes for itself (a ``seed`` on one, ``max_tokens`` on another) are never
part of an item: they come with the model, so two models that fix different params still
pair. Each pair differs only in what is being compared; where items find no partner,
`mismatch` names the keys whose values differ between the sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptlab.errors import UserError
from promptlab.reports.aggregate import dimension_value
from promptlab.reports.stats import mcnemar_exact, paired_bootstrap_ci, sign_test, wilson
from promptlab.store.queries import ScoredResult

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["Side", "ScorerComparison", "compare", "parse_selector", "sides", "MIN_PAIRS",
           "MIN_DISCORDANT"]

MIN_PAIRS = 10
MIN_DISCORDANT = 6  # below this, even a 6-0 split cannot reach p < 0.05 with McNemar


@dataclass(frozen=True)
class Side:
    """One side's results by item key (a JSON value per dimension of `dims`)."""

    label: str
    rows: dict[tuple[Any, ...], ScoredResult]
    dims: tuple[str, ...] = ()


@dataclass
class ScorerComparison:
    scorer: str
    pairs: int
    kind: str  # pass_rate or mean
    a_value: float
    b_value: float
    diff: float
    diff_lo: float
    diff_hi: float
    wins: int
    ties: int
    losses: int
    p_value: float
    test: str
    a_only: int = 0
    b_only: int = 0
    a_ci: tuple[float, float] = (0.0, 0.0)
    b_ci: tuple[float, float] = (0.0, 0.0)
    flipped: list[dict[str, Any]] = field(default_factory=list)
    mismatch: str = ""  # why items found no partner: the keys whose values differ

    @property
    def verdict(self) -> str:
        a_name, b_name = "A", "B"
        if self.pairs == 0 and self.mismatch:
            return f"0 pairs: {self.mismatch}"
        if self.pairs < MIN_PAIRS:
            advice = self.mismatch or "add dataset rows or repeats"
            return f"too few pairs to tell ({self.pairs}; need at least {MIN_PAIRS}): {advice}"
        if self.kind == "pass_rate" and self.a_only + self.b_only < MIN_DISCORDANT:
            if self.a_only + self.b_only == 0:
                return "no difference: every pair agrees"
            return (f"too small to tell: only {self.a_only + self.b_only} pairs disagree; "
                    f"need at least {MIN_DISCORDANT} for a test at p < 0.05")
        if self.p_value < 0.05 and (self.diff_lo > 0 or self.diff_hi < 0):
            better = a_name if self.diff > 0 else b_name
            return (f"{better} is better: difference {self.diff:+.3f} "
                    f"[{self.diff_lo:+.3f}, {self.diff_hi:+.3f}], {self.test} p = "
                    f"{self.p_value:.3g}")
        return (f"no detectable difference: {self.diff:+.3f} [{self.diff_lo:+.3f}, "
                f"{self.diff_hi:+.3f}], {self.test} p = {self.p_value:.3g}")


def parse_selector(text: str) -> tuple[str, str]:
    dim, sep, value = text.partition("=")
    if not sep or not dim:
        raise ValueError(text)
    return dim.strip(), value.strip()


def _matches(row: ScoredResult, dim: str, value: str) -> bool:
    got = dimension_value(row, dim)
    if isinstance(got, float | int) and not isinstance(got, bool):
        try:
            return float(value) == float(got)
        except ValueError:
            return False
    return str(got) == value


def _norm(value: Any) -> Any:
    # 0 and 0.0 are one temperature, whichever way a grid wrote it.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _key(row: ScoredResult, dims: Iterable[str]) -> tuple[Any, ...]:
    return tuple(json.dumps(_norm(dimension_value(row, d)), sort_keys=True) for d in dims)


def _shown(value_json: str) -> str:
    value = json.loads(value_json)
    if value is None:
        return "unset"
    return value if isinstance(value, str) else json.dumps(value)


def _values(values: Iterable[str]) -> str:
    return "{" + ", ".join(_shown(v) for v in sorted(values, key=_order)) + "}"


def _order(value_json: str) -> tuple[int, Any]:
    value = json.loads(value_json)
    if isinstance(value, float):
        return (0, value)
    return (1, value_json)


def side(rows: Iterable[ScoredResult], label: str, key_dims: list[str],
         selector: tuple[str, str] | None = None) -> Side:
    """The results a selector chooses, by item key. Two results with one key would make
    the pairing arbitrary: that is a user error naming what tells them apart."""
    chosen: dict[tuple[Any, ...], ScoredResult] = {}
    for r in rows:
        if selector is None or _matches(r, *selector):
            key = _key(r, key_dims)
            other = chosen.setdefault(key, r)
            if other is not r:
                raise UserError(_ambiguous(label, other, r))
    return Side(label, chosen, tuple(key_dims))


def _ambiguous(label: str, a: ScoredResult, b: ScoredResult) -> str:
    differ = [d for d in ("model", "prompt", *sorted(a.params.keys() | b.params.keys()))
              if dimension_value(a, d) != dimension_value(b, d)]
    what = ", ".join(f"{d} ({_shown(json.dumps(dimension_value(a, d)))} and "
                     f"{_shown(json.dumps(dimension_value(b, d)))})" for d in differ)
    return (f"compare: {label or 'a side'} has several results for one item (row "
            f"{a.row_id}, repeat {a.repeat}); they differ in {what}: choose one with "
            f"--between/--and {differ[0] if differ else 'DIM'}=VALUE")


def mismatch(a: Side, b: Side) -> str:
    """Why some items of one side have no partner on the other: the key dimensions whose
    values differ ("side A has temperature in {0.0}, side B in {0.7}"); "" when all pair."""
    if a.rows.keys() == b.rows.keys():
        return ""
    parts = []
    for i, dim in enumerate(a.dims):
        va, vb = {k[i] for k in a.rows}, {k[i] for k in b.rows}
        if va != vb:
            parts.append(f"side A has {dim} in {_values(va)}, side B in {_values(vb)}")
    if not parts:  # the same values, combined differently (e.g. a row missing for a model)
        only_a, only_b = len(a.rows.keys() - b.rows.keys()), len(b.rows.keys() - a.rows.keys())
        parts.append(f"{only_a} items of side A and {only_b} of side B have no partner")
    return "; ".join(parts)


def compare(a: Side, b: Side, scorer: str) -> ScorerComparison:
    """The paired comparison of `a` and `b` on one scorer."""
    keys = sorted(k for k in a.rows.keys() & b.rows.keys()
                  if scorer in a.rows[k].scores and scorer in b.rows[k].scores)
    pa = [a.rows[k].scores[scorer] for k in keys]
    pb = [b.rows[k].scores[scorer] for k in keys]
    pass_fail = all(x[1] is not None for x in pa + pb) and bool(keys)
    if pass_fail:
        va = [1.0 if x[1] else 0.0 for x in pa]
        vb = [1.0 if x[1] else 0.0 for x in pb]
    else:
        va = [x[0] if x[0] is not None else 0.0 for x in pa]
        vb = [x[0] if x[0] is not None else 0.0 for x in pb]
    diffs = [x - y for x, y in zip(va, vb, strict=True)]
    n = len(keys)
    lo, hi = paired_bootstrap_ci(diffs) if n else (0.0, 0.0)
    a_only = sum(1 for x, y in zip(va, vb, strict=True) if x > y)
    b_only = sum(1 for x, y in zip(va, vb, strict=True) if x < y)
    varying = [i for i, _ in enumerate(a.dims) if len({k[i] for k in keys}) > 1]
    flipped = [{"key": k, "item": " ".join(f"{a.dims[i]}={json.loads(k[i])}" for i in varying),
                "row_id": a.rows[k].row_id, "a_output": a.rows[k].output,
                "b_output": b.rows[k].output, "a": va[i], "b": vb[i]}
               for i, k in enumerate(keys) if va[i] != vb[i]]
    if pass_fail:
        p, test = mcnemar_exact(a_only, b_only), "exact McNemar"
    else:
        p, test = sign_test(diffs), "sign test"
    mean_a = sum(va) / n if n else 0.0
    mean_b = sum(vb) / n if n else 0.0
    return ScorerComparison(
        scorer=scorer, pairs=n, kind="pass_rate" if pass_fail else "mean", a_value=mean_a,
        b_value=mean_b, diff=mean_a - mean_b, diff_lo=lo, diff_hi=hi, wins=a_only,
        ties=n - a_only - b_only, losses=b_only, p_value=p, test=test, a_only=a_only,
        b_only=b_only,
        a_ci=wilson(int(sum(va)), n) if pass_fail else (mean_a, mean_a),
        b_ci=wilson(int(sum(vb)), n) if pass_fail else (mean_b, mean_b), flipped=flipped,
        mismatch=mismatch(a, b))


BASE_DIMS = ["prompt", "row", "repeat"]
# Dimensions that name what was run rather than a parameter sent.
_LABELS = ("model", "prompt")


def _swept(store: Store, run_id: str) -> list[str]:
    """The params the run's grid sweeps (``grid.params`` keys), sorted."""
    grid = store.run(run_id).config.get("grid") or {}
    return sorted((grid.get("params") or {}).keys())


def _selector(text: str | None, flag: str) -> tuple[str, str] | None:
    if text is None:
        return None
    try:
        return parse_selector(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: write DIMENSION=VALUE, e.g. model=gpt-4o-mini or "
                        "temperature=0.7") from None


def _check_dimension(dim: str, rows: list[ScoredResult], run_id: str) -> None:
    params = {k for r in rows for k in r.params}
    if dim not in params and dim not in ("model", "prompt", "row", "repeat"):
        raise UserError(f"compare: '{dim}' is not a dimension of run {run_id}; use model, "
                        f"prompt, row, repeat or one of: {', '.join(sorted(params))}")


def _labels(rows: list[ScoredResult], selector: tuple[str, str] | None, dim: str) -> set[str]:
    return {dimension_value(r, dim) for r in rows if selector is None or _matches(r, *selector)}


def _param_values(rows: list[ScoredResult], sel: tuple[str, str] | None,
                  dim: str) -> set[str]:
    """The values of a param among the rows a selector keeps."""
    return {json.dumps(r.params.get(dim), sort_keys=True) for r in rows
            if sel is None or _matches(r, *sel)}


def sides(store: Store, run_a: str, run_b: str | None, between: str | None,
          and_: str | None) -> tuple[Side, Side, list[str]]:
    """The two sides of a comparison, keyed so that each pair differs only in what is
    compared, and the scorers both sides have. `between`/`and_` are DIM=VALUE selectors
    (two groups of `run_a`, or a filter on each of two runs).

    One run: items are model x prompt x row x repeat x swept params, less the compared
    dimension (and less the model when that dimension is a param some model fixes). Two
    runs: prompt x row x repeat x the params either run sweeps, less the selectors'
    dimensions; model and prompt count only where a side has more than one.
    """
    sel_a, sel_b = _selector(between, "--between"), _selector(and_, "--and")
    rows_a = list(store.results(run_a))
    scorers = store.scorer_names(run_a)
    if run_b:
        rows_b = list(store.results(run_b))
        for sel, rows, run in ((sel_a, rows_a, run_a), (sel_b, rows_b, run_b)):
            if sel is not None:
                _check_dimension(sel[0], rows, run)
        chosen = {s[0] for s in (sel_a, sel_b) if s}
        swept = sorted(set(_swept(store, run_a)) | set(_swept(store, run_b)))
        # A param with one value on each side (a sweep job's setting) is what tells the two
        # runs apart, not an item: pair across it.
        swept = [d for d in swept if len(_param_values(rows_a, sel_a, d)) > 1
                 or len(_param_values(rows_b, sel_b, d)) > 1]
        labels = [d for d in _LABELS
                  if len(_labels(rows_a, sel_a, d)) > 1 or len(_labels(rows_b, sel_b, d)) > 1]
        key = [d for d in ["model", *BASE_DIMS, *swept]
               if d not in chosen and (d not in _LABELS or d in labels)]
        label_a = f"run {run_a}" + (f" {between}" if sel_a else "")
        label_b = f"run {run_b}" + (f" {and_}" if sel_b else "")
        scorers = sorted(set(scorers) & set(store.scorer_names(run_b)))
        return side(rows_a, label_a, key, sel_a), side(rows_b, label_b, key, sel_b), scorers
    if sel_a is None or sel_b is None:
        raise UserError("compare: give a second run, or two groups of this run with "
                        "--between DIM=VALUE --and DIM=VALUE")
    if sel_a[0] != sel_b[0]:
        raise UserError(f"compare: --between and --and must vary one dimension ({sel_a[0]} vs "
                        f"{sel_b[0]}); e.g. --between model=a --and model=b")
    dim = sel_a[0]
    _check_dimension(dim, rows_a, run_a)
    swept = _swept(store, run_a)
    key = [d for d in ["model", *BASE_DIMS, *swept] if d != dim]
    if dim not in swept and dim not in ("model", *BASE_DIMS):
        key.remove("model")  # a param the models fix: comparing it compares models
    return (side(rows_a, between or "", key, sel_a), side(rows_a, and_ or "", key, sel_b),
            scorers)


