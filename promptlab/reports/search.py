"""A search's report: its trials, the best point with its objective's 95% interval, and
with two objectives the Pareto front. Read from the store alone (``searches`` and
``search_trials``, the trials' runs), never from the Optuna study.

An objective is a scorer's pass rate (Wilson interval) or mean (bootstrap interval) over
a trial's run, or ``cost_usd`` (the run's total) or ``latency_p50_ms`` (median latency of
its ok calls), both as the calls cost when sent: a cache hit counts its source call's
cost and latency, so a point the cache answers is neither free nor instant.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from promptlab.canonical import finite
from promptlab.reports.aggregate import GroupStats, aggregate_runs, percentile
from promptlab.reports.render import md_escape

if TYPE_CHECKING:
    from promptlab.store import Store

__all__ = ["objective_summary", "objective_values", "pareto_front", "render_search",
           "search_report", "search_table"]


def _summary(store: Store, run_id: str, group: GroupStats | None, name: str,
             ) -> dict[str, Any]:
    if group is None:
        return {"kind": None, "value": None, "lo": None, "hi": None, "n": 0}
    if name in ("cost_usd", "latency_p50_ms"):
        # As the calls cost when sent: a repeated point's cache hits count their sources'.
        served = store.served_calls(run_id)
        if name == "cost_usd":
            return {"kind": "total", "value": sum(c.cost_usd or 0.0 for c in served),
                    "lo": None, "hi": None, "n": len(served)}
        latencies = sorted(c.latency_ms for c in served if c.ok and c.latency_ms is not None)
        return {"kind": "median", "value": percentile(latencies, 50), "lo": None,
                "hi": None, "n": len(latencies)}
    return group.score_summary(name)


def objective_summary(store: Store, run_id: str, objectives: Sequence[str]
                      ) -> list[dict[str, Any]]:
    """Each objective over one run: value, interval (lo, hi; None where there is none), n."""
    groups = aggregate_runs(store, [run_id], [])
    group = groups[0] if groups else None
    return [_summary(store, run_id, group, name) for name in objectives]


def objective_values(store: Store, run_id: str, objectives: Sequence[str]
                     ) -> list[float | None]:
    return [s["value"] for s in objective_summary(store, run_id, objectives)]


def _better_or_equal(a: Sequence[float], b: Sequence[float], directions: Sequence[str]
                     ) -> bool:
    return all((x >= y) if d == "maximize" else (x <= y)
               for x, y, d in zip(a, b, directions, strict=True))


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indexes of the points no other point dominates (as good in every objective and
    different in one), in input order."""
    front = []
    for i, p in enumerate(points):
        if not any(j != i and _better_or_equal(q, p, directions) and list(q) != list(p)
                   for j, q in enumerate(points)):
            front.append(i)
    return front


def search_report(store: Store, search_id: str) -> dict[str, Any]:
    """The report as plain data (the json format prints it as it is)."""
    info = store.search(search_id)
    spec = info.spec
    objectives, directions = spec["objectives"], spec["directions"]
    trials: list[dict[str, Any]] = [
        {"number": t.number, "run_id": t.run_id, "state": t.state, "params": t.params,
         "values": t.values, "error": t.error} for t in store.search_trials(search_id)]
    done = [t for t in trials if t["state"] == "complete" and t["values"] is not None]
    out: dict[str, Any] = {
        "search_id": info.id, "name": info.name, "status": info.status,
        "objectives": objectives, "directions": directions, "sampler": info.sampler,
        "seed": info.seed, "trials_planned": spec["trials"], "trials": trials,
        "best": None, "pareto_front": None}
    if not done:
        return out
    if len(objectives) == 1:
        sign = 1 if directions[0] == "maximize" else -1
        best = max(done, key=lambda t: (sign * t["values"][0], -t["number"]))
        [summary] = objective_summary(store, best["run_id"], objectives)
        out["best"] = {"number": best["number"], "run_id": best["run_id"],
                       "params": best["params"], "objective": objectives[0], **summary}
    else:
        front = pareto_front([t["values"] for t in done], directions)
        out["pareto_front"] = [
            {"number": done[i]["number"], "run_id": done[i]["run_id"],
             "params": done[i]["params"], "values": done[i]["values"]} for i in front]
    return out


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_num(v)}" for k, v in params.items())


def _interval(best: dict[str, Any]) -> str:
    if best["lo"] is None:
        return f"{_num(best['value'])} (n={best['n']})"
    return f"{_num(best['value'])} [95% CI {_num(best['lo'])}, {_num(best['hi'])}] (n={best['n']})"


def _trial_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["trial", "state", *report["objectives"], "params", "run"]
    rows = []
    for t in report["trials"]:
        values = t["values"] or [None] * len(report["objectives"])
        rows.append([str(t["number"]), t["state"], *(_num(v) for v in values),
                     _params(t["params"]), t["run_id"]])
    return header, rows


def _summary_lines(report: dict[str, Any]) -> list[str]:
    goals = ", ".join(f"{d} {o}" for o, d in zip(report["objectives"], report["directions"],
                                                 strict=True))
    lines = [f"search {report['search_id']} ({report['name']}, {report['status']}): "
             f"{len(report['trials'])} of {report['trials_planned']} trials, {goals}, "
             f"sampler {report['sampler']} seed {report['seed']}"]
    best = report["best"]
    if best is not None:
        lines.append(f"best: trial {best['number']} (run {best['run_id']}): "
                     f"{best['objective']} = {_interval(best)}; {_params(best['params'])}")
    for p in report["pareto_front"] or []:
        lines.append(f"pareto front: trial {p['number']} (run {p['run_id']}): "
                     f"{', '.join(_num(v) for v in p['values'])}; {_params(p['params'])}")
    if best is None and not report["pareto_front"]:
        lines.append("no trial has completed with a value yet")
    return lines


def search_table(report: dict[str, Any]) -> tuple[Table, list[str]]:
    """The terminal form: a rich table of the trials and the summary lines (escaped)."""
    header, rows = _trial_rows(report)
    table = Table(title=f"search {escape(report['search_id'])}", title_justify="left")
    for col in header:
        table.add_column(col, justify="right" if col not in ("params", "run", "state")
                         else "left")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table, [escape(line) for line in _summary_lines(report)]


def render_search(report: dict[str, Any], fmt: str) -> str:
    """markdown, csv or json."""
    if fmt == "json":
        return json.dumps(finite(report), indent=2, default=str, allow_nan=False) + "\n"
    header, rows = _trial_rows(report)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(rows)
        return buf.getvalue()
    lines = [f"- {md_escape(line)}" for line in _summary_lines(report)]
    lines += ["", "| " + " | ".join(md_escape(h) for h in header) + " |",
              "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
