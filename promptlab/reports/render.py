"""Report renderers: terminal table, Markdown, CSV and JSON, all from the same rows.

Names and values come from configs, datasets and model output, so each format shows
them as text: the terminal table escapes rich markup, Markdown escapes what a renderer
would turn into HTML or formatting (`md_escape`); CSV and JSON carry them unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from promptlab.canonical import finite
from promptlab.reports.aggregate import GroupStats

__all__ = ["COLUMNS", "FORMATS", "md_escape", "render_text", "rich_table", "score_cell"]

COLUMNS = ("calls", "ok", "errors", "cached", "tool_call_rate", "latency_p50_ms",
           "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms", "input_tokens", "output_tokens",
           "reasoning_tokens", "cached_input_tokens", "cache_write_tokens", "cost_usd")
# Shown when some group has a value (TTFT) or a non-zero one (tool calls, token detail), so
# a plain run's report stays narrow. JSON always carries every field.
_OPTIONAL = ("ttft_p50_ms", "ttft_p95_ms", "tool_call_rate", "reasoning_tokens",
             "cached_input_tokens", "cache_write_tokens")
FORMATS = ("table", "markdown", "csv", "json")
_HEADERS = {"calls": "calls", "ok": "ok", "errors": "err", "cached": "cached",
            "latency_p50_ms": "p50 ms", "latency_p95_ms": "p95 ms", "ttft_p50_ms": "ttft p50",
            "ttft_p95_ms": "ttft p95", "input_tokens": "tok in",
            "output_tokens": "tok out", "cost_usd": "cost $", "tool_call_rate": "tool rate",
            "reasoning_tokens": "reasoning", "cached_input_tokens": "cached in",
            "cache_write_tokens": "cache wr"}


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1 and v != 0 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


# Markdown punctuation that starts code, emphasis, links, tables or headings; "_" only
# where it is not inside a word (intraword underscores emphasise nothing).
_MD_PUNCTUATION = re.compile(r"[\\`*\[\]|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: str) -> str:
    """Text that Markdown (CommonMark, GitHub tables) shows as itself, on one line: HTML
    characters as entities, Markdown punctuation backslash-escaped, newlines as spaces."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_PUNCTUATION.sub(lambda m: "\\" + m.group(0), text)
    return " ".join(text.splitlines())


def _rows(groups: Sequence[GroupStats], dims: Sequence[str],
          scorers: Sequence[str] = ()) -> list[dict[str, Any]]:
    return [g.as_dict(dims, scorers) for g in groups]


def score_cell(row: dict[str, Any], name: str) -> str:
    """'0.81 [0.57, 0.93]': the estimate and its 95% interval."""
    v = row.get(name)
    if v is None:
        return "-"
    return f"{v:.2f} [{row[name + '_lo']:.2f}, {row[name + '_hi']:.2f}]"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The columns to show: every fixed one, and the optional ones some group fills."""
    return [c for c in COLUMNS if c not in _OPTIONAL or any(
        r[c] is not None if c.startswith("ttft") else r[c] for r in rows)]


def rich_table(groups: Sequence[GroupStats], dims: Sequence[str], title: str,
               scorers: Sequence[str] = ()) -> Table:
    table = Table(title=title, title_justify="left",
                  caption="scores: pass rate or mean [95% CI]" if scorers else None,
                  caption_justify="left")
    rows = _rows(groups, dims, scorers)
    columns = _columns(rows)
    for d in dims:
        table.add_column(escape(d), style="bold", overflow="fold")
    for name in scorers:
        table.add_column(escape(name), justify="right", style="cyan", overflow="fold")
    for c in columns:
        table.add_column(_HEADERS[c], justify="right", overflow="fold")
    for row in rows:
        table.add_row(*(escape(_cell(row[d])) for d in dims),
                      *(score_cell(row, s) for s in scorers), *(_cell(row[c]) for c in columns))
    return table


def render_text(groups: Sequence[GroupStats], dims: Sequence[str], fmt: str,
                meta: dict[str, Any], scorers: Sequence[str] = ()) -> str:
    rows = _rows(groups, dims, scorers)
    score_fields = [f"{s}{suffix}" for s in scorers for suffix in ("", "_lo", "_hi", "_n")]
    if fmt == "json":
        return json.dumps(finite({**meta, "group_by": list(dims), "scorers": list(scorers),
                                  "groups": rows}), indent=2, allow_nan=False)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*dims, *score_fields, *_columns(rows)],
                                lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        columns = _columns(rows)
        header = [*dims, *scorers, *columns]
        lines = [f"## Run {md_escape(str(meta['run_id']))} ({md_escape(str(meta['name']))})",
                 "", "| " + " | ".join(md_escape(h) for h in header) + " |",
                 "|" + "|".join(["---"] * len(dims) + ["---:"] * (len(header) - len(dims)))
                 + "|"]
        for row in rows:
            cells = [*(md_escape(_cell(row[d])) for d in dims),
                     *(score_cell(row, s) for s in scorers), *(_cell(row[c]) for c in columns)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    raise ValueError(fmt)
