"""The Optuna side of a search: the study, its sampler and the space as distributions.

promptlab drives Optuna's ask/tell API itself rather than Hydra's Optuna sweeper: that
plugin (hydra-optuna-sweeper 1.3.0, the newest) requires optuna<3.0 (installing it
replaces Optuna 5 with 2.10.1), so it cannot run with a current Optuna; and a sweeper
owns the loop, where a search needs its trials linked to runs before they start (to
resume a killed one) and every point checked before a call.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from promptlab.config.search import SearchParam, SearchSpec
from promptlab.store import Store
from promptlab.store.searches import SearchTrialInfo

__all__ = ["distributions", "open_study", "resumed_seed", "sampler_for", "stale_trials"]


def distributions(params: Sequence[SearchParam]) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for p in params:
        if p.kind == "float":
            out[p.key] = FloatDistribution(p.low, p.high, log=p.log)
        elif p.kind == "int":
            out[p.key] = IntDistribution(int(p.low), int(p.high), log=p.log,
                                         step=int(p.step or 1))
        else:
            out[p.key] = CategoricalDistribution(list(p.choices))
    return out


def sampler_for(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def resumed_seed(seed: int, asked: int) -> int:
    """The sampler's seed once `asked` trials are in the study: `seed` itself for a new
    search, else the first 4 bytes of sha256("{seed}:{asked}") (deterministic).

    A sampler keeps its random state in memory only, so one rebuilt with the search's own
    seed on --resume would draw the first trials' points again; seeded from (seed, trials
    already asked) it continues with points of its own, and the same resume of the same
    state draws the same points."""
    if asked == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{asked}".encode()).digest()[:4], "big")


@contextmanager
def open_study(store: Store, search_id: str, spec: SearchSpec, seed: int,
               known: Sequence[SearchTrialInfo] = ()) -> Iterator[optuna.Study]:
    """The search's study in its storage beside the database (created, or loaded to
    resume). A study that was lost (its file deleted) is rebuilt from the finished trials
    the database recorded; its engine is closed on exit. Its sampler is seeded with
    `resumed_seed`, so a resumed search continues rather than repeats its points."""
    optuna.logging.set_verbosity(logging.WARNING)
    where = store.optuna_storage()
    storage = optuna.storages.RDBStorage(where.url, engine_kwargs=where.engine_kwargs)
    directions: list[Any] = list(spec.directions)  # "maximize"/"minimize", checked in config
    try:
        study = optuna.create_study(
            study_name=search_id, storage=storage, sampler=sampler_for(spec.sampler, seed),
            directions=directions, load_if_exists=True)
        if not study.get_trials(deepcopy=False) and known:
            _rebuild(study, spec, known)
        asked = len(study.get_trials(deepcopy=False))
        study.sampler = sampler_for(spec.sampler, resumed_seed(seed, asked))
        yield study
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _rebuild(study: optuna.Study, spec: SearchSpec, known: Sequence[SearchTrialInfo]) -> None:
    # Every recorded trial, in order, so the study's trial numbers stay the database's.
    dists = distributions(spec.params)
    for t in sorted(known, key=lambda t: t.number):
        ok = t.state == "complete" and t.values is not None
        study.add_trial(create_trial(params=t.params, distributions=dists,
                                     values=t.values if ok else None,
                                     state=TrialState.COMPLETE if ok else TrialState.FAIL))


def stale_trials(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Trials asked and never told (the process that asked them died): number -> params."""
    return {t.number: dict(t.params) for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.RUNNING}
