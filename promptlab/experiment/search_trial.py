"""One trial of a search: a promptlab run of the experiment at one sampled point.

The trial's row (number, run id, point) is in the database before its run starts, so
`finish_trial` is also how a killed trial is finished: a run that was never created is
started under the recorded id, one that stopped part-way is resumed through the normal
resume path (nothing recorded is sent again), a completed one is left as it is. The
cache (the database) answers any call an earlier trial already made, so a repeated
point sends nothing.

`trial_job` is the same step as a Hydra launcher job (``search.parallel: N`` with e.g.
``hydra/launcher=joblib``): a module-level function with a picklable context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from promptlab.config.loading import LoadedConfig, load
from promptlab.errors import UserError
from promptlab.experiment.launch import resume_run, run_experiment
from promptlab.store import Store
from promptlab.store.searches import SearchTrialInfo

__all__ = ["TrialContext", "finish_trial", "trial_job"]


def finish_trial(store: Store, config_dir: Path, overrides: tuple[str, ...],
                 trial: SearchTrialInfo, console: Console | None = None) -> str:
    """Bring the trial's run to an end (see the module docstring); returns its status."""
    try:
        info = store.run(trial.run_id)
    except UserError:  # not started yet (or killed before its row was written)
        loaded = load(config_dir, [*overrides, *trial.overrides])
        return run_experiment(loaded, store=store, console=console, progress=False,
                              run_id=trial.run_id).status
    if info.status == "completed":
        return info.status
    return resume_run(store, trial.run_id, experiments=config_dir, console=console,
                      progress=False).status


@dataclass(frozen=True)
class TrialContext:
    """What a launcher job needs to run trial number `num` of a batch (picklable)."""

    db: str
    config_dir: str
    overrides: tuple[str, ...]
    trials: tuple[SearchTrialInfo, ...]


def trial_job(loaded: LoadedConfig, num: int, ctx: TrialContext) -> str:
    """A Hydra launcher job: the batch's trial `num`, in whatever process the launcher
    chose; returns the run's status."""
    with Store.open(ctx.db) as store:
        return finish_trial(store, Path(ctx.config_dir), ctx.overrides, ctx.trials[num])
