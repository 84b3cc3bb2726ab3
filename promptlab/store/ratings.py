"""What a person does to stored runs from the viewer: rate a trial, delete a run.

A mixin of `Store`. A rating is a score: a row of `scores` with scorer ``human`` (passed
true for thumbs up, false for down; value 1 or 0; the comment and the time in
``detail_json``), so reports, compare and export show it as they show any scorer, and
`promptlab score` (which replaces only the scorers it runs) leaves it alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from promptlab.errors import UserError
from promptlab.store.tables import (
    Attempt,
    CachePending,
    Result,
    Run,
    RunArtifact,
    Score,
    StoredTrial,
)

__all__ = ["HUMAN", "Curation"]

HUMAN = "human"


class Curation:
    engine: Engine
    refresh_cells: Callable[..., bool]  # CellQueries (store/cells.py)

    def rate(self, run_id: str, idx: int, *, up: bool, comment: str = "") -> dict[str, Any]:
        """Store (or replace) a person's rating of one trial; returns it as a score."""
        detail = {"comment": comment, "rated_at": datetime.now(UTC).isoformat()}
        with self.engine.begin() as conn:
            found = conn.scalar(select(StoredTrial.idx).where(
                StoredTrial.run_id == run_id, StoredTrial.idx == idx))
            if found is None:
                raise UserError(f"trial '{idx}' not found in run {run_id}; give its index "
                                "(0-based)")
            conn.execute(delete(Score).where(Score.run_id == run_id, Score.idx == idx,
                                             Score.scorer == HUMAN))
            conn.execute(insert(Score).values(run_id=run_id, idx=idx, scorer=HUMAN,
                                              value=1.0 if up else 0.0, passed=up,
                                              detail_json=json.dumps(detail)))
        self.refresh_cells(run_id, scores_only=True)
        return {"value": 1.0 if up else 0.0, "passed": up, "detail": detail}

    def unrate(self, run_id: str, idx: int) -> bool:
        """Remove a trial's rating; False when it had none."""
        with self.engine.begin() as conn:
            done = conn.execute(delete(Score).where(Score.run_id == run_id, Score.idx == idx,
                                                    Score.scorer == HUMAN))
        self.refresh_cells(run_id, scores_only=True)
        return bool(done.rowcount)

    def delete_run(self, run_id: str) -> list[str]:
        """Delete a run, its child runs (a judge's) and all their rows in one transaction;
        returns the ids deleted. Artifacts stay: other runs may share them (by sha256)."""
        with self.engine.begin() as conn:
            ids, frontier = [run_id], [run_id]
            while frontier:
                frontier = list(conn.scalars(select(Run.id).where(
                    Run.parent_run_id.in_(frontier))))
                ids += [i for i in frontier if i not in ids]
            for table in (Score, Result, Attempt, StoredTrial, RunArtifact, CachePending):
                conn.execute(delete(table).where(table.run_id.in_(ids)))
            for rid in reversed(ids):  # children before parents
                conn.execute(delete(Run).where(Run.id == rid))
        return ids
