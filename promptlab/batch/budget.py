"""``run.max_calls`` and ``run.max_cost_usd`` on the batch path, held as the runner holds
them for live calls: a trial goes into a batch only while the calls so far stay under
``run.max_calls`` and the money spent, plus the estimated cost (at the batch price) of the
batches sent and not read back yet, plus its own estimate, stays under ``run.max_cost_usd``.
The first trial over stops the run (``budget_stop``: status "stopped"); ``promptlab resume
RUN run.max_cost_usd=...`` sends the rest.

The runner can wait for calls in flight to come back before deciding; a batch may take a
day, so here the estimate decides at once (a batch never goes over on an estimate).
"""

from __future__ import annotations

from promptlab.runner.records import Call, RunStats
from promptlab.spec import RunSettings

__all__ = ["Budget", "estimated_cost"]


def estimated_cost(call: Call) -> float:
    """USD a call may cost at its model's (batch) price: its estimated input tokens, and
    max_tokens (or 256) out."""
    m = call.trial.model
    if not (m.input_per_mtok or m.output_per_mtok):
        return 0.0
    params = call.trial.params
    out = int(params.get("max_tokens") or params.get("max_completion_tokens") or 256)
    return ((call.est_tokens - out) * m.input_per_mtok + out * m.output_per_mtok) / 1e6


class Budget:
    """The budgets of one round of submissions; `reserved` holds the estimates of the
    batches not read back yet (by batch number), shared with the executor."""

    def __init__(self, run: RunSettings, stats: RunStats, reserved: dict[int, float]) -> None:
        self.run, self.stats, self.reserved = run, stats, reserved
        self._taken = 0.0  # estimates of trials taken since the last `settle`

    def take(self, call: Call) -> bool:
        """Count the call in, or stop the run (False) if it would go over a budget."""
        run, stats = self.run, self.stats
        if stats.calls_spent(run):
            return False
        cost = estimated_cost(call)
        if run.max_cost_usd is not None:
            ahead = sum(self.reserved.values()) + self._taken
            if stats.cost_usd + ahead + cost > run.max_cost_usd:
                stats.budget_stop = (
                    f"run.max_cost_usd={run.max_cost_usd:g} reached (${stats.cost_usd:.4f} "
                    f"spent, ${ahead:.4f} estimated for the batches sent, at the batch price)")
                return False
        stats.calls += 1
        self._taken += cost
        return True

    def settle(self) -> float:
        """The estimates taken since the last call (they go with the batch just made)."""
        taken, self._taken = self._taken, 0.0
        return taken
