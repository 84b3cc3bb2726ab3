"""The Python API: run and resume experiments from pipelines and notebooks.

    import promptlab
    result = promptlab.run(["models=[mock-small]", "grid.repeats=2"],
                           experiments="experiments", db="results.db")
    print(result.status, result.counts, result.cost_usd)
    df = result.results().to_pandas()

A user error raises `promptlab.UserError` (one line, before any call is made).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from promptlab.results import Results
    from promptlab.runner.session import RunOutcome

__all__ = ["RunResult", "resume", "run"]


@dataclass(frozen=True)
class RunResult:
    """A finished (or stopped) run: its id, status, counts and cost."""

    run_id: str
    status: str  # completed, stopped (a budget), interrupted or failed
    counts: dict[str, int]  # planned, done, ok, errors, skipped, cached, attempts
    cost_usd: float
    elapsed_s: float
    db: str = field(repr=False)  # the database URL (may hold a password: not in repr)

    @property
    def ok(self) -> bool:
        """Every planned trial ended with an ok result."""
        return self.status == "completed" and self.counts["ok"] == self.counts["planned"]

    def results(self) -> Results:
        """Every trial of this run, as `promptlab.load_results` gives it."""
        from promptlab.results import load_results

        return load_results(self.db, self.run_id)


def _result(outcome: RunOutcome) -> RunResult:
    s = outcome.stats
    counts = {"planned": s.planned, "done": s.done, "ok": s.ok, "errors": s.errors,
              "skipped": s.skipped, "cached": s.cached, "attempts": s.attempts}
    return RunResult(outcome.run_id, outcome.status, counts, s.cost_usd, s.elapsed_s,
                     outcome.db_url)


def run(overrides: Sequence[str] = (), *, experiments: str | os.PathLike[str] = "experiments",
        db: str | None = None, progress: bool = False,
        client: httpx.AsyncClient | None = None) -> RunResult:
    """Compose experiments/config.yaml with Hydra `overrides`, check everything, then send
    every call and record it in `db` (a path or SQLAlchemy URL; default $PROMPTLAB_DB, the
    config's ``db``, or ./results.db). `client` replaces the HTTP client (tests inject
    one with `httpx.MockTransport`)."""
    from promptlab.config.loading import find_experiments_dir, load
    from promptlab.experiment.launch import run_experiment
    from promptlab.experiment.prepare import prepare
    from promptlab.store import Store

    loaded = load(find_experiments_dir(experiments), list(overrides))
    prepared = prepare(loaded)
    with Store.open(db, configured=loaded.config.get("db")) as store:
        outcome = run_experiment(loaded, store=store, client=client, progress=progress,
                                 prepared=prepared)
    return _result(outcome)


def resume(run_id: str, overrides: Sequence[str] = (), *, db: str | None = None,
           experiments: str | os.PathLike[str] | None = None, progress: bool = False,
           client: httpx.AsyncClient | None = None) -> RunResult:
    """Finish an interrupted or stopped run: only trials without an ok result are sent.
    `overrides` may change run.* settings only (e.g. ``run.max_cost_usd=5``)."""
    from promptlab.experiment.launch import resume_run
    from promptlab.store import Store

    with Store.open(db) as store:
        outcome = resume_run(store, store.resolve_run_id(run_id), overrides=list(overrides),
                             experiments=Path(experiments) if experiments else None,
                             client=client, progress=progress)
    return _result(outcome)
