"""Python access to recorded results, for notebooks and pipelines.

    import promptlab
    rows = promptlab.load_results("results.db", "latest")
    df = rows.to_pandas()          # with the optional pandas extra
"""

from __future__ import annotations

from typing import Any

from promptlab.store import Store

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


def load_results(db: str | None = None, run_id: str = "latest") -> Results:
    """Every trial of a run with its result and scores. `db` is a path or SQLAlchemy URL
    (default: $PROMPTLAB_DB or ./results.db)."""
    with Store.open(db, read_only=True) as store:
        run_id = store.resolve_run_id(run_id)
        scores = store.scores(run_id)
        out = Results()
        out.run_id = run_id
        for d in store.result_table(run_id):
            for name, (value, passed) in scores.get(d["idx"], {}).items():
                d[f"score.{name}"] = value
                d[f"score.{name}.passed"] = passed
            out.append(d)
        return out
