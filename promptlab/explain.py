"""`promptlab cache why`: why a trial was (or was not) served from the cache."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from promptlab.store.inspect import FINGERPRINT_FIELDS, cache_candidates, trial_detail

__all__ = ["explain_cache"]


def _short(value: Any, width: int = 90) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def explain_cache(engine: Engine, run_id: str, ref: str) -> list[str]:
    trial = trial_detail(engine, run_id, ref)
    head = (f"trial {trial['idx']} of run {run_id} (model {trial['model_alias']}, prompt "
            f"{trial['prompt']}, row {trial['row_id']}), fingerprint {trial['cache_key'][:16]}")
    if trial["cache_hit"]:
        return [head, f"cache hit: served from {trial['cache_source']}"]
    candidates = cache_candidates(engine, trial)
    same = [c for c in candidates if c["cache_key"] == trial["cache_key"]]
    lines = [head, "cache miss:"]
    earlier = [c for c in same if c["status"] == "ok" and c["cacheable"]]
    if earlier:
        lines.append(f"  an identical request is stored now ({earlier[0]['run_id']}:"
                     f"{earlier[0]['idx']}); it was written after this trial ran, or this "
                     "run used run.cache=off")
        return lines
    if same:
        c = same[0]
        why = ("it failed (errors are never cached)" if c["status"] != "ok"
               else "it was recorded with run.cache=read or off, or was itself a cache hit")
        lines.append(f"  identical request {c['run_id']}:{c['idx']} exists, but {why}")
        return lines
    if not candidates:
        lines.append(f"  no stored trial for dataset row '{trial['row_id']}' at all: nothing "
                     "to reuse")
        return lines

    def diff(c: dict[str, Any]) -> list[str]:
        return [f for f in FINGERPRINT_FIELDS if c["fields"][f] != trial["fields"][f]]

    nearest = min(candidates, key=lambda c: len(diff(c)))
    lines.append(f"  nearest stored request: {nearest['run_id']}:{nearest['idx']} "
                 f"({nearest['status']}); fields that differ:")
    for f in diff(nearest):
        lines.append(f"    {f}: here {_short(trial['fields'][f])}")
        lines.append(f"    {' ' * len(f)}  there {_short(nearest['fields'][f])}")
    return lines
