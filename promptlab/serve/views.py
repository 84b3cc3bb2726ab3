"""What the API and the pages share: cursors, filters, reports, comparisons, word diffs.

Pure functions over `Store` reads; no HTTP here. Every number comes from the functions the
CLI uses (`aggregate_runs` and `render_text` for reports, `sides` and `compare` for
comparisons), so the viewer and `promptlab report`/`compare` cannot disagree.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
import threading
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from promptlab.errors import UserError
from promptlab.store.browse import TrialFilter

if TYPE_CHECKING:
    from promptlab.store import RunInfo, Store

__all__ = ["ReportCache", "compare_json", "decode_cursor", "encode_cursor", "facets",
           "parse_date", "run_json", "swept", "trial_filter", "word_diff", "check_dims"]

KNOWN_DIMS = ("model", "prompt", "row", "repeat")


def encode_cursor(key: Any) -> str | None:
    """An opaque cursor for a page key (None: no next page)."""
    if key is None:
        return None
    if isinstance(key, tuple) and key and isinstance(key[0], datetime):
        key = [key[0].isoformat(), key[1]]
    raw = json.dumps(list(key) if isinstance(key, tuple) else key)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str | None, kind: str) -> Any:
    """The page key of a cursor made by `encode_cursor` for `kind` ("idx", "row", "run")."""
    if not text:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if kind == "idx" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "row" and isinstance(value, list) and len(value) == 2 and isinstance(
                value[0], str) and isinstance(value[1], int):
            return (value[0], value[1])
        if kind == "run" and isinstance(value, list) and len(value) == 2:
            return (datetime.fromisoformat(value[0]), str(value[1]))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        pass
    raise UserError(f"cursor {text[:40]!r} is not valid here; use the next_cursor of the "
                    "previous page")


def parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise UserError(f"since {text[:40]!r}: not a date; write 2026-11-25 or "
                        "2026-11-25T14:00") from None


def run_json(info: RunInfo, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": info.id, "name": info.name, "status": info.status,
        "created_at": info.created_at.isoformat(),
        "finished_at": info.finished_at.isoformat() if info.finished_at else None,
        "planned": info.planned, "done": info.done, "errors": info.errors,
        "sweep_id": info.sweep_id, "parent_run_id": info.parent_run_id}
    if full:
        out.update(config=info.config, overrides=info.overrides, manifest=info.manifest)
    return out


def swept(info: RunInfo) -> list[str]:
    return sorted(((info.config.get("grid") or {}).get("params") or {}).keys())


def facets(info: RunInfo, scorers: list[str]) -> dict[str, Any]:
    """What a run's trials can be filtered by, from its stored config (no scan)."""
    models = info.config.get("models") or {}
    params: dict[str, set[str]] = {}
    for name, values in ((info.config.get("grid") or {}).get("params") or {}).items():
        params.setdefault(name, set()).update(_text(v) for v in values)
    for m in models.values():
        for name, value in (m.get("params") or {}).items():
            params.setdefault(name, set()).add(_text(value))
    return {"models": sorted(models), "prompts": sorted(info.config.get("prompts") or {}),
            "params": {k: sorted(v) for k, v in sorted(params.items())}, "scorers": scorers}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def trial_filter(*, model: str | None = None, prompt: str | None = None,
                 param: list[str] | None = None, row: str | None = None,
                 scorer: str | None = None, passed: str | None = None,
                 q: str | None = None, differ: bool = False) -> TrialFilter:
    params: dict[str, str] = {}
    for p in param or []:
        if not p:  # a form's "any"
            continue
        name, sep, value = p.partition("=")
        if not sep or not name.strip():
            raise UserError(f"param {p!r}: write NAME=VALUE, e.g. temperature=0.7")
        params[name.strip()] = value.strip()
    if passed not in (None, "", "true", "false"):
        raise UserError(f"passed {passed!r}: write true or false")
    return TrialFilter(model=model or None, prompt=prompt or None, params=params,
                       row=row or None, scorer=scorer or None,
                       passed=None if not passed else passed == "true", text=q or None,
                       differ=differ)


def check_dims(info: RunInfo, by: str) -> list[str]:
    """The report's dimensions, checked as `promptlab report --by` checks them."""
    dims = [d.strip() for d in by.split(",") if d.strip()]
    if not dims:
        raise UserError("--by: give at least one dimension, e.g. --by model,prompt")
    params = set((info.config.get("grid") or {}).get("params") or {})
    for m in (info.config.get("models") or {}).values():
        params.update(m.get("params") or {})
    known = set(KNOWN_DIMS) | params
    unknown = [d for d in dims if d not in known]
    if unknown:
        raise UserError(f"--by: '{unknown[0]}' is not a dimension of run {info.id}; use one "
                        f"of: {', '.join(sorted(known))}")
    return dims


class ReportCache:
    """Reports of finished runs, kept while their scores stay as they were: a report of a
    million results takes about a second to aggregate, a page must come in milliseconds."""

    def __init__(self, size: int = 32) -> None:
        self._items: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def report(self, store: Store, info: RunInfo, dims: list[str]) -> dict[str, Any]:
        """`promptlab report RUN --by DIMS --format json`, as a dict."""
        from promptlab.reports.aggregate import aggregate_runs
        from promptlab.reports.render import render_text

        key = (store.url, info.id, tuple(dims), info.finished_at, store.score_count(info.id))
        if info.status != "running":
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
        groups = aggregate_runs(store, [info.id], dims)
        scorers = store.scorer_names(info.id)
        meta = {"run_id": info.id, "name": info.name, "status": info.status}
        out: dict[str, Any] = json.loads(render_text(groups, dims, "json", meta, scorers))
        if info.status != "running":
            with self._lock:
                self._items[key] = out
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return out


def compare_json(store: Store, run: str, run_b: str | None, between: str | None,
                 and_: str | None, scorer: str | None = None, show: int = 50
                 ) -> dict[str, Any]:
    """`promptlab compare ... --format json`, as a dict; flipped rows carry their trials'
    indexes so a page can link them."""
    from promptlab.reports.compare import compare, sides

    run_a = store.resolve_run_id(run)
    b_id = store.resolve_run_id(run_b) if run_b else None
    a, b, scorers = sides(store, run_a, b_id, between or None, and_ or None)
    if scorer:
        if scorer not in scorers:
            raise UserError(f"--scorer {scorer}: not scored in this run; scorers here: "
                            f"{', '.join(scorers) or 'none (run promptlab score RUN)'}")
        scorers = [scorer]
    if not scorers:
        raise UserError("compare: the run has no scores; add scorers to the experiment and run "
                        "'promptlab score RUN'")
    if not a.rows or not b.rows:
        empty = a.label if not a.rows else b.label
        raise UserError(f"compare: no results match {empty}; check the value")
    out: list[dict[str, Any]] = []
    for s in scorers:
        c = compare(a, b, s)
        d = {k: v for k, v in c.__dict__.items() if k != "flipped"}
        d["a_ci"], d["b_ci"] = list(c.a_ci), list(c.b_ci)
        d["verdict"] = c.verdict
        d["flipped_count"] = len(c.flipped)
        d["flipped"] = [{**{k: v for k, v in f.items() if k != "key"},
                         "a_idx": a.rows[f["key"]].idx, "b_idx": b.rows[f["key"]].idx}
                        for f in c.flipped[:show]]
        out.append(d)
    return {"a": a.label, "b": b.label, "run": run_a, "run_b": b_id, "comparisons": out}


_WORD = re.compile(r"\s+|[^\s]+")


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """The two texts as (op, text) pieces, word by word: op is "same", "del" (only in a)
    or "ins" (only in b)."""
    wa, wb = _WORD.findall(a), _WORD.findall(b)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(wa[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(wa[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(wb[j1:j2])))
    return out
