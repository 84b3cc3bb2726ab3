"""Sweeps: `promptlab run -m model=a,b run.concurrency=8,16` runs one job per combination.

The jobs themselves go through Hydra's sweeper and launcher (`promptlab.config.launch`);
here the basic sweeper's jobs are expanded beforehand with Hydra's own override parser
(so ``a,b``, ``range(0,3)`` and ``choice(...)`` mean what they mean to Hydra), so that
every job is composed and checked before the first one sends anything.
"""

from __future__ import annotations

import itertools
import secrets

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from promptlab.errors import UserError

__all__ = ["expand_sweep", "new_sweep_id", "uses_own_sweeper"]


def new_sweep_id() -> str:
    return "sweep-" + secrets.token_hex(4)


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The overrides of every job: the cartesian product of the sweep overrides."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise UserError(f"-m: {str(exc).splitlines()[0]}; check the sweep overrides") from None
    axes: list[list[str]] = []
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            key = override.get_key_element()
            axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            axes.append([text])
    return [list(job) for job in itertools.product(*axes)]


def uses_own_sweeper(overrides: list[str]) -> bool:
    """Whether the user chose a Hydra sweeper other than the basic one (e.g. optuna): its
    jobs are not known before it runs, so each is checked as it starts."""
    return any(o.split("=", 1)[0].lstrip("+") == "hydra/sweeper" and
               o.split("=", 1)[1] != "basic" for o in overrides if "=" in o)
