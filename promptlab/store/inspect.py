"""Read-side queries about single trials: details and cache explanations."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select

from promptlab.errors import UserError
from promptlab.store.models import Result, TrialRow

__all__ = ["trial_detail", "cache_candidates", "FINGERPRINT_FIELDS"]

FINGERPRINT_FIELDS = ("provider", "endpoint", "model", "messages", "params", "repeat")


def _fields(row: Any) -> dict[str, Any]:
    return {"provider": row.provider, "endpoint": row.endpoint, "model": row.model,
            "messages": json.loads(row.messages_json), "params": json.loads(row.params_json),
            "repeat": row.repeat}


def trial_detail(engine: Engine, run_id: str, ref: str) -> dict[str, Any]:
    """A trial by index or key prefix, with its fingerprint fields and result."""
    stmt = select(*TrialRow.__table__.c, Result.status, Result.cache_hit,
                  Result.cache_source).join(
        Result, (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx), isouter=True
    ).where(TrialRow.run_id == run_id)
    stmt = stmt.where(TrialRow.idx == int(ref)) if ref.isdigit() else stmt.where(
        TrialRow.key.startswith(ref))
    with engine.connect() as conn:
        rows = conn.execute(stmt.limit(2)).all()
    if not rows:
        raise UserError(f"trial '{ref}' not found in run {run_id}; give its index (0-based) or "
                        "a prefix of its key")
    if len(rows) > 1:
        raise UserError(f"trial '{ref}' is ambiguous in run {run_id}; give more of its key")
    t = rows[0]
    return {"run_id": t.run_id, "idx": t.idx, "key": t.key, "cache_key": t.cache_key,
            "row_id": t.row_id, "prompt": t.prompt, "model_alias": t.model_alias,
            "status": t.status, "cache_hit": bool(t.cache_hit), "cache_source": t.cache_source,
            "fields": _fields(t)}


def cache_candidates(engine: Engine, trial: dict[str, Any], limit: int = 500
                     ) -> list[dict[str, Any]]:
    """Stored trials that could have served this one: same dataset row, other positions."""
    stmt = (select(*TrialRow.__table__.c, Result.status, Result.cacheable, Result.cache_hit)
            .join(Result, (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx))
            .where(TrialRow.row_id == trial["row_id"])
            .where((TrialRow.run_id != trial["run_id"]) | (TrialRow.idx != trial["idx"]))
            .order_by(Result.finished_at.desc()).limit(limit))
    with engine.connect() as conn:
        return [{"run_id": t.run_id, "idx": t.idx, "cache_key": t.cache_key, "status": t.status,
                 "cacheable": bool(t.cacheable), "cache_hit": bool(t.cache_hit),
                 "fields": _fields(t)} for t in conn.execute(stmt)]
