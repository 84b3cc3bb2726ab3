"""Python access to recorded results, for notebooks.

    import promptlab
    rows = promptlab.load_results("results.db", "latest")
    df = rows.to_pandas()          # with the optional pandas extra
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from promptlab.store import open_engine, resolve_url
from promptlab.store.models import Result, TrialRow
from promptlab.store.queries import resolve_run_id, scores_of

__all__ = ["Results", "load_results"]


class Results(list[dict[str, Any]]):
    """One dict per trial: identity, outcome, params as columns (``temperature``), dataset
    fields as ``row.<field>``, and scores as ``score.<name>`` / ``score.<name>.passed``."""

    run_id: str = ""

    def to_pandas(self) -> Any:
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install 'promptlab[pandas]'") from None
        return pd.DataFrame(list(self))


def load_results(db: str, run_id: str = "latest") -> Results:
    """Every trial of a run with its result and scores. `db` is a path or SQLAlchemy URL."""
    engine = open_engine(resolve_url(db))
    try:
        run_id = resolve_run_id(engine, run_id)
        scores = scores_of(engine, run_id)
        stmt = (select(TrialRow.idx, TrialRow.key, TrialRow.model_alias, TrialRow.provider,
                       TrialRow.model, TrialRow.prompt, TrialRow.row_id, TrialRow.repeat,
                       TrialRow.params_json, TrialRow.row_json, Result.status, Result.output,
                       Result.error, Result.finish_reason, Result.latency_ms, Result.ttft_ms,
                       Result.input_tokens, Result.output_tokens, Result.cost_usd,
                       Result.cache_hit, Result.attempts)
                .join(Result, (Result.run_id == TrialRow.run_id) & (Result.idx == TrialRow.idx))
                .where(TrialRow.run_id == run_id).order_by(TrialRow.idx))
        out = Results()
        out.run_id = run_id
        with engine.connect() as conn:
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
                for name, (value, passed) in scores.get(r.idx, {}).items():
                    d[f"score.{name}"] = value
                    d[f"score.{name}.passed"] = passed
                out.append(d)
        return out
    finally:
        engine.dispose()
