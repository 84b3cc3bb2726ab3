"""Paired comparison of two groups (of one run, or of two runs) on the same items.

Items are matched on the dataset row, prompt and repeat (and on every other grid
dimension the two sides share), so each pair differs only in what is being compared.
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

    @property
    def verdict(self) -> str:
        a_name, b_name = "A", "B"
        if self.pairs < MIN_PAIRS:
            return (f"too few pairs to tell ({self.pairs}; need at least {MIN_PAIRS}): add "
                    "dataset rows or repeats")
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


def _key(row: ScoredResult, dims: Iterable[str]) -> tuple[Any, ...]:
    return tuple(json.dumps(dimension_value(row, d), sort_keys=True) for d in dims)


def side(rows: Iterable[ScoredResult], label: str, key_dims: list[str],
         selector: tuple[str, str] | None = None) -> Side:
    chosen: dict[tuple[Any, ...], ScoredResult] = {}
    for r in rows:
        if selector is None or _matches(r, *selector):
            chosen[_key(r, key_dims)] = r
    return Side(label, chosen, tuple(key_dims))


def compare(a: Side, b: Side, scorer: str) -> ScorerComparison:
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
        b_ci=wilson(int(sum(vb)), n) if pass_fail else (mean_b, mean_b), flipped=flipped)


BASE_DIMS = ["row", "prompt", "repeat"]


def _dims(rows: list[ScoredResult]) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {"model": set()}
    for r in rows:
        values["model"].add(r.model_alias)
        for k, v in r.params.items():
            values.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    return values


def _selector(text: str | None, flag: str) -> tuple[str, str] | None:
    if text is None:
        return None
    try:
        return parse_selector(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: write DIMENSION=VALUE, e.g. model=gpt-4o-mini or "
                        "temperature=0.7") from None


def sides(store: Store, run_a: str, run_b: str | None, between: str | None,
          and_: str | None) -> tuple[Side, Side, list[str]]:
    """The two sides of a comparison, keyed so that each pair differs only in what is
    compared, and the scorers both sides have. `between`/`and_` are DIM=VALUE selectors
    (two groups of `run_a`, or a filter on each of two runs)."""
    sel_a, sel_b = _selector(between, "--between"), _selector(and_, "--and")
    rows_a = list(store.results(run_a))
    scorers = store.scorer_names(run_a)
    if run_b:
        rows_b = list(store.results(run_b))
        da, db = _dims(rows_a), _dims(rows_b)
        shared = [d for d in da if d in db and da[d] == db[d] and len(da[d]) > 1
                  and d not in {s[0] for s in (sel_a, sel_b) if s}]
        key = BASE_DIMS + shared
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
    dims = _dims(rows_a)
    if sel_a[0] not in dims and sel_a[0] not in ("prompt", "row", "repeat"):
        raise UserError(f"compare: '{sel_a[0]}' is not a dimension of run {run_a}; use "
                        f"model, prompt or one of: {', '.join(sorted(set(dims) - {'model'}))}")
    key = [d for d in ["model", "prompt", "row", "repeat", *sorted(set(dims) - {"model"})]
           if d != sel_a[0]]
    return (side(rows_a, between or "", key, sel_a), side(rows_a, and_ or "", key, sel_b),
            scorers)
