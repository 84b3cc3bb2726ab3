"""A self-contained HTML report of a run or a sweep: summary with intervals, SVG charts,
outputs beside prompts.

Every value shown (model output, dataset values, names from configs) is untrusted text:
the one template autoescapes everything, and the page carries a Content-Security-Policy
that forbids scripts, so even a mistake could not run one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import escape

from promptlab.redaction import redact_overrides
from promptlab.reports.aggregate import GroupStats
from promptlab.reports.render import _columns, _rows, score_cell

if TYPE_CHECKING:
    from promptlab.store import RunInfo, Store

__all__ = ["render_html", "render_sweep_html", "bar_chart"]

MAX_OUTPUTS = 1000

_PAGE = (Path(__file__).parent / "report.html.j2").read_text(encoding="utf-8")


def bar_chart(labels: Sequence[str], values: Sequence[float | None],
              lows: Sequence[float | None] | None = None,
              highs: Sequence[float | None] | None = None, unit: str = "") -> str:
    """A horizontal bar chart as an SVG document (with optional interval whiskers)."""
    width, bar_h, left = 560, 22, 220
    height = 20 + bar_h * len(labels) + 10
    top = max([v for v in [*(values or []), *(highs or [])] if v is not None] or [1.0]) or 1.0
    scale = (width - left - 70) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">']
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = 15 + i * bar_h
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">'
                     f"{escape(label[:34])}</text>")
        if v is None:
            continue
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{v * scale:.1f}" height="{bar_h - 8}" '
                     'fill="#4a7fc1"/>')
        if lows is not None and highs is not None and lows[i] is not None:
            lo, hi = lows[i] or 0.0, highs[i] or 0.0
            cy = y + 3 + (bar_h - 8) / 2
            parts.append(f'<line x1="{left + lo * scale:.1f}" x2="{left + hi * scale:.1f}" '
                         f'y1="{cy}" y2="{cy}" stroke="#222" stroke-width="1.5"/>')
        parts.append(f'<text x="{left + v * scale + 4:.1f}" y="{y + 14}">{v:.3g}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _data_uri(svg: str) -> str:
    import base64

    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _outputs(store: Store, run_ids: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    """The first MAX_OUTPUTS trials of the runs, in order, and how many there are."""
    out: list[dict[str, Any]] = []
    total = 0
    for run_id in run_ids:
        total += store.result_count(run_id)
        if len(out) >= MAX_OUTPUTS:
            continue
        rows = store.report_outputs(run_id, MAX_OUTPUTS - len(out))
        scores = store.scores(run_id, max_idx=rows[-1]["idx"] if rows else 0)
        for r in rows:
            messages = json.loads(r["messages_json"])
            sent = "\n\n".join(f"[{m['role']}] {m['content']}" for m in messages)
            out.append({"run_id": run_id, "idx": r["idx"], "model": r["model_alias"],
                        "prompt": r["prompt"], "params": r["params_json"],
                        "row_id": r["row_id"], "sent": sent,
                        "output": (r["output"] if r["output"] is not None
                                   else f"ERROR: {r['error']}"),
                        "scores": scores.get(r["idx"], {})})
    return out, total


def _names(runs: Sequence[RunInfo], group: str) -> list[str]:
    return list(dict.fromkeys(n for r in runs for n in r.config.get(group, {})))


def render_html(store: Store, run: RunInfo, groups: Sequence[GroupStats],
                dims: Sequence[str], scorers: Sequence[str]) -> str:
    """The report of one run."""
    git = (run.manifest.get("git_commit") or "-")[:12] + (
        " (dirty)" if run.manifest.get("git_dirty") else "")
    meta = [f"status {run.status}", f"started {run.created_at} UTC",
            f"{run.done}/{run.planned} results", f"git {git}",
            f"models {', '.join(_names([run], 'models'))}",
            f"prompts {', '.join(_names([run], 'prompts'))}"]
    return _page(store, f"Run {run.id}: {run.name}", f"promptlab report {run.id}", meta, [run],
                 groups, dims, scorers, show_runs=False)


def render_sweep_html(store: Store, sweep_id: str, runs: Sequence[RunInfo],
                      groups: Sequence[GroupStats], dims: Sequence[str],
                      scorers: Sequence[str]) -> str:
    """The report of every run of a sweep as one page, with a table of its runs."""
    runs = sorted(runs, key=lambda r: r.created_at)
    meta = [f"{len(runs)} runs", f"started {runs[0].created_at} UTC" if runs else "",
            f"{sum(r.done for r in runs)}/{sum(r.planned for r in runs)} results",
            f"models {', '.join(_names(runs, 'models'))}",
            f"prompts {', '.join(_names(runs, 'prompts'))}"]
    return _page(store, f"Sweep {sweep_id}", f"promptlab report {sweep_id}", meta, runs,
                 groups, dims, scorers, show_runs=True)


def _page(store: Store, heading: str, page_title: str, meta: list[str],
          runs: Sequence[RunInfo], groups: Sequence[GroupStats], dims: Sequence[str],
          scorers: Sequence[str], *, show_runs: bool) -> str:
    rows = _rows(groups, dims, scorers)
    labels = [" / ".join(str(row[d]) for d in dims) for row in rows]
    charts = []
    for s in scorers:
        svg = bar_chart(labels, [row[s] for row in rows], [row[s + "_lo"] for row in rows],
                        [row[s + "_hi"] for row in rows])
        charts.append({"title": f"{s} by {', '.join(dims)} (95% CI)", "uri": _data_uri(svg)})
    for key, title in (("latency_p50_ms", "latency p50 (ms)"),
                       ("latency_p95_ms", "latency p95 (ms)")):
        charts.append({"title": title, "uri": _data_uri(bar_chart(
            labels, [row[key] for row in rows], unit=" ms"))})
    outputs, total = _outputs(store, [r.id for r in runs])
    run_rows = [{"id": r.id, "name": r.name, "status": r.status, "created_at": r.created_at,
                 "done": r.done, "planned": r.planned,
                 "overrides": redact_overrides(" ".join(r.overrides))} for r in runs]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_PAGE).render(
        heading=heading, title=page_title, meta=[m for m in meta if m], runs=run_rows,
        show_runs=show_runs, dims=dims, scorers=scorers, rows=rows, columns=_columns(rows),
        score_cell=score_cell, charts=charts, outputs=outputs, total=total,
        truncated=total > len(outputs))
