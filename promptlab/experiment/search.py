"""`promptlab search`: Optuna's ask/tell over promptlab runs.

`plan_search` composes the experiment, parses its ``search:`` block and composes and
prepares the experiment at every choice and both ends of every interval, so a bad key,
value or objective (or a ``cost_usd`` objective with a model that has no price, which
would look free) is one line and exit 2 before the first request. `run_search` then
asks Optuna for points (``parallel`` at a time), records each trial's row and run id in
the database, runs it (in this process, or through the configured Hydra launcher when
``parallel`` > 1), reads its objectives from the store and tells Optuna. `--resume`
first finishes the trials a dead process left (see `search_trial`), then asks for the
rest; the search's config, sampler and seed come from the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.markup import escape

from promptlab.config.launch import launch_copies
from promptlab.config.loading import LoadedConfig, load
from promptlab.config.overrides import hydra_overrides, task_overrides
from promptlab.config.search import SearchSpec, parse_search, search_source, trial_overrides
from promptlab.errors import ConfigError, UserError
from promptlab.experiment.prepare import prepare
from promptlab.experiment.search_trial import TrialContext, finish_trial, trial_job
from promptlab.experiment.study import distributions, open_study, stale_trials
from promptlab.ids import new_run_id
from promptlab.redaction import Scrubber
from promptlab.reports.search import objective_values
from promptlab.store import Store
from promptlab.store.ownership import RunStillRunning
from promptlab.store.searches import SearchTrialInfo

__all__ = ["SearchPlan", "new_search_id", "plan_search", "run_search"]


def new_search_id() -> str:
    return "search-" + secrets.token_hex(4)


@dataclass(frozen=True)
class SearchPlan:
    config_dir: Path
    overrides: tuple[str, ...]  # the experiment's; the launcher's are in `launcher`
    launcher: tuple[str, ...]
    loaded: LoadedConfig
    spec: SearchSpec
    scrub: Scrubber  # the models' secrets, out of what the search row stores


def plan_search(config_dir: Path, overrides: Sequence[str]) -> SearchPlan:
    """Everything checked before a request (see the module docstring)."""
    task = tuple(task_overrides(overrides))
    loaded = load(config_dir, task)
    prepared = prepare(loaded)
    source = search_source(loaded.choices, config_dir, task)
    spec = parse_search(loaded.config, source, config_dir, list(prepared.scorers.scorers))
    first = {p.key: p.corners()[0] for p in spec.params}
    seen: set[tuple[str, ...]] = set()
    models = list(prepared.spec.models)  # every model a trial can call
    for param in spec.params:
        for value in param.corners():
            point = trial_overrides({**first, param.key: value})
            if tuple(point) in seen:
                continue
            seen.add(tuple(point))
            try:
                at = prepare(load(config_dir, [*task, *point]), check_api_keys=False)
            except UserError as exc:
                raise ConfigError(f"{source}: search.params.{param.key} at {value}: "
                                  f"{exc}") from None
            models += at.spec.models
    if "cost_usd" in spec.objectives:
        # An unpriced model costs 0 and would win every cost objective.
        for m in models:
            if not m.input_per_mtok and not m.output_per_mtok:
                raise ConfigError(
                    f"{source}: search.objective cost_usd: models.{m.alias} has no price: "
                    f"set models.{m.alias}.price.input_per_mtok/output_per_mtok, or choose "
                    "another objective")
    return SearchPlan(config_dir, task, tuple(hydra_overrides(overrides)), loaded, spec,
                      Scrubber(prepared.spec.models))


def _start(store: Store, search_id: str, number: int, params: dict[str, object]
           ) -> SearchTrialInfo:
    overrides = trial_overrides(params)
    store.start_search_trial(search_id, number, new_run_id(), dict(params), overrides)
    return next(t for t in store.search_trials(search_id) if t.number == number)


def _tell(study: optuna.Study, number: int, values: list[float] | None) -> None:
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    if states.get(number) != TrialState.RUNNING:  # told before the process died
        return
    if values is None:
        study.tell(number, state=TrialState.FAIL)
    else:
        study.tell(number, values)


class _Search:
    def __init__(self, plan: SearchPlan, store: Store, search_id: str,
                 console: Console) -> None:
        self.plan, self.store, self.id, self.console = plan, store, search_id, console

    def run_batch(self, batch: list[SearchTrialInfo]) -> dict[int, str | None]:
        """Each trial's run to its end: number -> the error that stopped it, or None."""
        if len(batch) == 1 and not self.plan.launcher:
            try:
                finish_trial(self.store, self.plan.config_dir, self.plan.overrides, batch[0],
                             self.console)
            except UserError as exc:
                return {batch[0].number: str(exc)}
            return {batch[0].number: None}
        ctx = TrialContext(self.store.url, str(self.plan.config_dir), self.plan.overrides,
                           tuple(batch))
        results = launch_copies(self.plan.config_dir,
                                [*self.plan.overrides, *self.plan.launcher], len(batch),
                                trial_job, ctx)
        return {t.number: r.error for t, r in zip(batch, results, strict=True)}

    def record(self, study: optuna.Study, trial: SearchTrialInfo, error: str | None) -> bool:
        spec = self.plan.spec
        values = None
        if error is None:
            got = objective_values(self.store, trial.run_id, spec.objectives)
            missing = [o for o, v in zip(spec.objectives, got, strict=True) if v is None]
            if missing:
                error = f"objective {missing[0]} has no value in run {trial.run_id}"
            else:
                values = [float(v) for v in got if v is not None]
        _tell(study, trial.number, values)
        self.store.finish_search_trial(self.id, trial.number,
                                       "failed" if values is None else "complete", values, error)
        point = " ".join(trial.overrides)
        if values is None:
            self.console.print(f"[red]trial {trial.number} failed:[/] {escape(point)}: "
                               f"{escape(error or '')}")
        else:
            shown = ", ".join(f"{o}={v:.4g}" for o, v in zip(spec.objectives, values,
                                                             strict=True))
            self.console.print(f"trial {trial.number}: {escape(point)} -> {escape(shown)} "
                               f"(run {trial.run_id})")
        return values is not None


def run_search(plan: SearchPlan, store: Store, *, resume: str | None = None,
               console: Console | None = None) -> tuple[str, int]:
    """Run (or resume) a search to its number of trials: (search id, failed trials)."""
    console = console or Console(stderr=True)
    spec = plan.spec
    storage = store.optuna_storage().display  # an unreadable study file: one line, here
    if resume is not None:
        search_id = resume
        info = store.search(search_id)
        if info.spec != spec.as_dict():
            raise UserError(f"search {search_id}: the search block on disk differs from the "
                            "one the search started with; restore it, or start a new search")
        seed = info.seed
        for trial in store.search_trials(search_id):
            # A trial still run by a live process: that process still runs the search.
            if trial.state != "running":
                continue
            try:
                store.check_free(trial.run_id)
            except RunStillRunning as exc:
                raise UserError(f"search {search_id}: trial {trial.number}'s {exc}") from None
            except UserError:  # its run was never started: resume starts it
                pass
    else:
        search_id = new_search_id()
        seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
        store.create_search(search_id=search_id, name=plan.loaded.config.get("name", ""),
                            config=plan.loaded.config, overrides=plan.overrides,
                            spec=spec.as_dict(), sampler=spec.sampler, seed=seed,
                            storage=storage, scrub=plan.scrub)
    goals = ", ".join(f"{d} {o}" for o, d in zip(spec.objectives, spec.directions, strict=True))
    console.print(f"search {search_id}: {spec.trials} trials, {goals} (sampler {spec.sampler}, "
                  f"seed {seed})")
    search = _Search(plan, store, search_id, console)
    failed = 0
    try:
        with open_study(store, search_id, spec, seed, store.search_trials(search_id)) as study:
            dists = distributions(spec.params)
            rows = {t.number: t for t in store.search_trials(search_id)}
            pending = [t for t in rows.values() if t.state == "running"]
            for number, params in stale_trials(study).items():
                if number not in rows:  # asked, then killed before its row was written
                    pending.append(_start(store, search_id, number, params))
            while True:
                if not pending:
                    need = min(spec.parallel, spec.trials - len(store.search_trials(search_id)))
                    if need <= 0:
                        break
                    for _ in range(need):
                        asked = study.ask(dists)
                        pending.append(_start(store, search_id, asked.number, asked.params))
                errors = search.run_batch(pending)
                for trial in pending:
                    failed += not search.record(study, trial, errors.get(trial.number))
                pending = []
    except KeyboardInterrupt:
        store.finish_search(search_id, "interrupted")
        console.print(f"[yellow]interrupted:[/] every finished trial is saved; continue with: "
                      f"promptlab search --resume {search_id}")
        raise
    store.finish_search(search_id, "completed")
    return search_id, failed
