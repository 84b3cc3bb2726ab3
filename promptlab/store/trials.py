"""Reads about single trials: their requests, responses, outputs and cache candidates.

A mixin of `Store`. The trial x result join (with the last attempt where a reader needs
the wire request) is written here once for every reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, func, select

from promptlab.errors import UserError
from promptlab.store.tables import RESULT_DETAILS, Attempt, Result, Score, StoredTrial

__all__ = ["TrialQueries"]



_ON_RESULT = (Result.run_id == StoredTrial.run_id) & (Result.idx == StoredTrial.idx)
# A result's columns in an export (`TrialQueries.export_rows`).
_EXPORTED = ("status", "output", "finish_reason", "input_tokens", "output_tokens",
             "latency_ms", "ttft_ms", "cost_usd", "attempts", "response_model", "fingerprint",
             "error_kind", "error", "cache_hit", "cache_source", *RESULT_DETAILS)


def _fields(row: Any) -> dict[str, Any]:
    return {"provider": row.provider, "endpoint": row.endpoint, "model": row.model,
            "messages": json.loads(row.messages_json), "params": json.loads(row.params_json),
            "repeat": row.repeat}


def _with_last_attempt(stmt: Any, run_id: str) -> Any:
    """Join each trial's last attempt (outer: a cache hit has none)."""
    last = (select(Attempt.idx, func.max(Attempt.number).label("n"))
            .where(Attempt.run_id == run_id).group_by(Attempt.idx).subquery())
    return (stmt.join(last, last.c.idx == StoredTrial.idx, isouter=True)
            .join(Attempt, (Attempt.run_id == StoredTrial.run_id)
                  & (Attempt.idx == StoredTrial.idx) & (Attempt.number == last.c.n),
                  isouter=True))


class TrialQueries:
    engine: Engine

    def trial_detail(self, run_id: str, ref: str) -> dict[str, Any]:
        """A trial by index or key prefix, with its fingerprint fields and result."""
        stmt = select(*StoredTrial.__table__.c, Result.status, Result.cache_hit,
                      Result.cache_source, Result.finished_at).join(
            Result, _ON_RESULT, isouter=True).where(StoredTrial.run_id == run_id)
        stmt = stmt.where(StoredTrial.idx == int(ref)) if ref.isdigit() else stmt.where(
            StoredTrial.key.startswith(ref, autoescape=True))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.limit(2)).all()
        if not rows:
            raise UserError(f"trial '{ref}' not found in run {run_id}; give its index "
                            "(0-based) or a prefix of its key")
        if len(rows) > 1:
            raise UserError(f"trial '{ref}' is ambiguous in run {run_id}; give more of its key")
        t = rows[0]
        return {"run_id": t.run_id, "idx": t.idx, "key": t.key, "cache_key": t.cache_key,
                "row_id": t.row_id, "prompt": t.prompt, "model_alias": t.model_alias,
                "status": t.status, "cache_hit": bool(t.cache_hit),
                "cache_source": t.cache_source, "finished_at": t.finished_at,
                "fields": _fields(t)}

    def trial_record(self, run_id: str, idx: int) -> dict[str, Any]:
        """Everything stored about one trial besides its identity (`trial_detail`): its
        dataset row, every attempt in order (request as stored, headers redacted; response
        status and body; timing; error kind), its result, and its scores with detail."""
        with self.engine.connect() as conn:
            row_json = conn.scalar(select(StoredTrial.row_json).where(
                StoredTrial.run_id == run_id, StoredTrial.idx == idx))
            attempts = [{
                "number": a.number, "started_at": a.started_at, "duration_ms": a.duration_ms,
                "request": {"url": a.url, "headers": json.loads(a.request_headers_json),
                            "body": a.request_body},
                "response": {"status": a.status_code, "body": a.response_body},
                "error_kind": a.error_kind, "error": a.error,
                "retry_after_ms": a.retry_after_ms,
            } for a in conn.execute(select(Attempt).where(
                Attempt.run_id == run_id, Attempt.idx == idx).order_by(Attempt.number))]
            result = conn.execute(select(Result).where(Result.run_id == run_id,
                                                       Result.idx == idx)).first()
            scores = {s.scorer: {"value": s.value,
                                 "passed": None if s.passed is None else bool(s.passed),
                                 "detail": json.loads(s.detail_json) if s.detail_json else None}
                      for s in conn.execute(select(Score).where(
                          Score.run_id == run_id, Score.idx == idx).order_by(Score.scorer))}
        out = None
        if result is not None:
            out = {k: v for k, v in result._asdict().items() if k not in ("run_id", "idx")}
            out["cache_hit"], out["cacheable"] = bool(out["cache_hit"]), bool(out["cacheable"])
        return {"row": json.loads(row_json) if row_json else None, "attempts": attempts,
                "result": out, "scores": scores}

    def cache_candidates(self, trial: dict[str, Any], limit: int = 500
                         ) -> list[dict[str, Any]]:
        """Stored trials that could have served this one, newest first: same dataset row,
        finished before this trial's result was recorded, and not a later trial of its own
        run (those were not there when it looked the cache up)."""
        stmt = (select(*StoredTrial.__table__.c, Result.status, Result.cacheable,
                       Result.cache_hit, Result.finished_at)
                .join(Result, _ON_RESULT)
                .where(StoredTrial.row_id == trial["row_id"])
                .where((StoredTrial.run_id != trial["run_id"])
                       | (StoredTrial.idx < trial["idx"]))
                .order_by(Result.finished_at.desc()).limit(limit))
        if trial["finished_at"] is not None:
            stmt = stmt.where(Result.finished_at < trial["finished_at"])
        with self.engine.connect() as conn:
            return [{"run_id": t.run_id, "idx": t.idx, "cache_key": t.cache_key,
                     "status": t.status, "cacheable": bool(t.cacheable),
                     "cache_hit": bool(t.cache_hit), "finished_at": t.finished_at,
                     "fields": _fields(t)} for t in conn.execute(stmt)]

    def trials_with_last_request(self, run_id: str) -> dict[int, dict[str, Any]]:
        """Per trial: key, fingerprint, the last attempt's request body, and the result."""
        stmt = _with_last_attempt(
            select(StoredTrial.idx, StoredTrial.key, StoredTrial.cache_key,
                   Attempt.request_body, Result.status, Result.output, Result.finish_reason,
                   Result.input_tokens, Result.output_tokens, Result.response_model,
                   Result.fingerprint, Result.cache_source)
            .join(Result, _ON_RESULT), run_id).where(StoredTrial.run_id == run_id)
        with self.engine.connect() as conn:
            return {r.idx: r._asdict() for r in conn.execute(stmt)}

    def export_rows(self, run_id: str) -> Iterator[dict[str, Any]]:
        """One dict per finished trial: the trial, its last request and response, result."""
        stmt = _with_last_attempt(
            select(*StoredTrial.__table__.c, Attempt.request_body, Attempt.response_body,
                   Attempt.url, Attempt.status_code,
                   # labelled apart from the trial's columns (both have run_id, idx, ...)
                   *(Result.__table__.c[k].label(f"result_{k}") for k in _EXPORTED))
            .join(Result, _ON_RESULT), run_id).where(
            StoredTrial.run_id == run_id).order_by(StoredTrial.idx)
        with self.engine.connect() as conn:
            for t in conn.execute(stmt):
                req, resp = t.request_body, t.response_body
                yield {
                    "idx": t.idx, "key": t.key, "model": t.model_alias,
                    "provider": t.provider, "api_model": t.model, "prompt": t.prompt,
                    "params": json.loads(t.params_json), "row_id": t.row_id,
                    "row": json.loads(t.row_json), "repeat": t.repeat,
                    "messages": json.loads(t.messages_json),
                    "request": {"url": t.url, "body": req} if req is not None else None,
                    "response": ({"status": t.status_code, "body": resp}
                                 if resp is not None else None),
                    "result": {k: t._mapping[f"result_{k}"] for k in _EXPORTED},
                }

    def ok_outputs(self, run_id: str) -> list[dict[str, Any]]:
        """What scorers read: every ok result's output with its row, params and messages."""
        stmt = (select(StoredTrial.idx, StoredTrial.prompt, StoredTrial.row_json,
                       StoredTrial.params_json, StoredTrial.messages_json, Result.output,
                       Result.tool_calls_json, Result.parsed_json)
                .join(Result, _ON_RESULT)
                .where(StoredTrial.run_id == run_id, Result.status == "ok"))
        with self.engine.connect() as conn:
            return [{"idx": r.idx, "prompt": r.prompt, "row": json.loads(r.row_json),
                     "params": json.loads(r.params_json),
                     "messages": json.loads(r.messages_json),
                     "output": r.output or "",
                     "tool_calls": json.loads(r.tool_calls_json) if r.tool_calls_json else [],
                     "parsed": json.loads(r.parsed_json) if r.parsed_json else None,
                     "has_parsed": r.parsed_json is not None} for r in conn.execute(stmt)]

    def result_table(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Flat per-trial dicts for notebooks: identity, outcome, params and row fields."""
        stmt = (select(StoredTrial.idx, StoredTrial.key, StoredTrial.model_alias,
                       StoredTrial.provider, StoredTrial.model, StoredTrial.prompt,
                       StoredTrial.row_id, StoredTrial.repeat, StoredTrial.params_json,
                       StoredTrial.row_json, Result.status, Result.output, Result.error,
                       Result.finish_reason, Result.latency_ms, Result.ttft_ms,
                       Result.input_tokens, Result.output_tokens, Result.cost_usd,
                       Result.cache_hit, Result.attempts)
                .join(Result, _ON_RESULT)
                .where(StoredTrial.run_id == run_id).order_by(StoredTrial.idx))
        with self.engine.connect() as conn:
            for r in conn.execute(stmt):
                d = {"run_id": run_id, "idx": r.idx, "key": r.key, "model": r.model_alias,
                     "provider": r.provider, "api_model": r.model, "prompt": r.prompt,
                     "row_id": r.row_id, "repeat": r.repeat, "status": r.status,
                     "output": r.output, "error": r.error, "finish_reason": r.finish_reason,
                     "latency_ms": r.latency_ms, "ttft_ms": r.ttft_ms,
                     "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                     "cost_usd": r.cost_usd, "cache_hit": bool(r.cache_hit),
                     "attempts": r.attempts}
                d.update(json.loads(r.params_json))
                d.update({f"row.{k}": v for k, v in json.loads(r.row_json).items()})
                yield d

    def report_outputs(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """The first `limit` trials with what was sent and what came back (HTML report)."""
        stmt = (select(StoredTrial.idx, StoredTrial.model_alias, StoredTrial.prompt,
                       StoredTrial.params_json, StoredTrial.row_id, StoredTrial.messages_json,
                       Result.output, Result.error)
                .join(Result, _ON_RESULT)
                .where(StoredTrial.run_id == run_id).order_by(StoredTrial.idx).limit(limit))
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(stmt)]
