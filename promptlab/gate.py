"""Quality gates (`--fail-under SCORER=VALUE`): a run fails when a scorer's pass rate, or
mean for a numeric scorer, over the whole run falls below VALUE. For CI.

The number gated is the one the report shows for the run as one group (`score_summary`
of the report's aggregation), so a gate and a report never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptlab.errors import UserError

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["Gate", "check_names", "evaluate", "failures", "parse_gates"]


@dataclass(frozen=True)
class Gate:
    scorer: str
    minimum: float


def parse_gates(texts: Sequence[str] | None) -> list[Gate]:
    """`SCORER=VALUE` (VALUE a number, or a percentage such as 90%)."""
    gates = []
    for text in texts or ():
        name, sep, value = text.partition("=")
        name, value = name.strip(), value.strip()
        try:
            if not (sep and name and value):
                raise ValueError
            minimum = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise UserError(f"--fail-under {text!r}: write SCORER=VALUE, e.g. --fail-under "
                            "exact=0.9 (a pass rate) or --fail-under length=120 (a mean)"
                            ) from None
        gates.append(Gate(name, minimum))
    return gates


def check_names(gates: Sequence[Gate], scorers: Collection[str], where: str) -> None:
    """A gate on a scorer that is not there is a user error naming the ones that are."""
    for gate in gates:
        if gate.scorer not in scorers:
            there = (f"its scorers are {', '.join(sorted(scorers))}" if scorers
                     else "it has no scorers (add a 'scorers:' section)")
            raise UserError(f"--fail-under {gate.scorer}: {where} has no scorer "
                            f"'{gate.scorer}'; {there}")


def failures(gates: Sequence[Gate], summary: Callable[[str], dict[str, Any]]) -> list[str]:
    """One line per gate that fails; `summary(scorer)` is the report's score summary."""
    lines = []
    for gate in gates:
        s = summary(gate.scorer)
        head = f"fail-under: {gate.scorer}"
        if s["kind"] is None:
            lines.append(f"{head} has no scores (no ok result was scored); needs "
                         f"{gate.minimum:g}")
            continue
        if s["kind"] == "pass_rate" and gate.minimum > 1:
            raise UserError(f"--fail-under {gate.scorer}={gate.minimum:g}: {gate.scorer} is a "
                            f"pass rate (0 to 1); write {gate.scorer}={gate.minimum / 100:g} "
                            f"or {gate.scorer}={gate.minimum:g}%")
        if s["value"] < gate.minimum:
            what = "pass rate" if s["kind"] == "pass_rate" else "mean"
            lines.append(f"{head} {what} {s['value']:.3f} < {gate.minimum:g} (over "
                         f"{s['n']:,} scored trials)")
    return lines


def evaluate(store: Store, run_ids: Sequence[str], gates: Sequence[Gate]) -> list[str]:
    """The failing gates' lines over these runs taken as one group."""
    if not gates:
        return []
    from promptlab.reports.aggregate import GroupStats, aggregate_runs

    groups = aggregate_runs(store, run_ids, [])
    whole = groups[0] if groups else GroupStats(())
    return failures(gates, whole.score_summary)
