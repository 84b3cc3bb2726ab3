"""The ``search:`` block: a parameter space in Hydra's sweep syntax, objectives, budget.

```yaml
search:
  params:                        # Hydra's sweep syntax, parsed by Hydra's own parser
    grid.params.temperature: interval(0.0, 1.2)
    grid.params.max_tokens: int(interval(8, 64))
    grid.params.top_p: choice(0.8, 0.9, 1.0)
    prompts: choice([terse], [fewshot])
  objective: correct             # a scorer (pass rate or mean), cost_usd or latency_p50_ms;
  direction: maximize            # a list of two of each gives a Pareto front
  trials: 30
  parallel: 1                    # trials asked (and run through the Hydra launcher) at once
  seed: 7                        # the sampler's seed (else one is drawn and stored)
  sampler: tpe                   # tpe, random or nsga2
```

Parsing is pure (no Optuna here): each param becomes a `SearchParam` (float, int or
categorical with its bounds or choices), and `trial_overrides` turns a sampled point back
into Hydra overrides for one run. ``grid.params.*`` axes are lists in the schema, so a
point sets them to a one-value list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, RangeSweep
from hydra.errors import HydraException

from promptlab.config.files import display
from promptlab.config.overrides import check as check_overrides
from promptlab.errors import ConfigError

__all__ = ["BUILTIN_OBJECTIVES", "DIRECTIONS", "SAMPLERS", "SearchParam", "SearchSpec",
           "parse_search", "search_source", "trial_overrides"]

BUILTIN_OBJECTIVES = ("cost_usd", "latency_p50_ms")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "nsga2")


@dataclass(frozen=True)
class SearchParam:
    """One axis of the space: ``float``/``int`` with bounds, or ``categorical`` choices
    (each an override value as Hydra writes it, e.g. ``[terse]`` or ``0.9``)."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[str, ...] = ()

    def corners(self) -> list[str]:
        """Values that together reach every choice and both ends: checked before a call."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return [str(int(self.low)), str(int(self.high))]
        return [repr(float(self.low)), repr(float(self.high))]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "low": self.low, "high": self.high,
                "log": self.log, "step": self.step, "choices": list(self.choices)}


@dataclass(frozen=True)
class SearchSpec:
    params: tuple[SearchParam, ...]
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    trials: int
    parallel: int
    seed: int | None
    sampler: str
    source: str = ""  # the file that declared it, for messages

    def as_dict(self) -> dict[str, Any]:
        return {"params": [p.as_dict() for p in self.params],
                "objectives": list(self.objectives), "directions": list(self.directions),
                "trials": self.trials, "parallel": self.parallel, "seed": self.seed,
                "sampler": self.sampler}


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return []


def _param(key: str, text: str, where: str) -> SearchParam:
    try:
        override = OverridesParser.create().parse_override(f"{key}={text}")
    except HydraException as exc:
        raise ConfigError(f"{where}: search.params.{key}: '{text}' is not Hydra sweep syntax "
                          f"({str(exc).splitlines()[0]}); write e.g. interval(0.0, 1.0), "
                          "int(interval(1, 8)), tag(log, interval(0.001, 1)), choice(a, b) "
                          "or range(1, 10)") from None
    if not override.is_sweep_override():
        raise ConfigError(f"{where}: search.params.{key}: '{text}' is a single value, not a "
                          "space; write interval(a, b), choice(a, b, ...) or range(a, b), or "
                          "set the value in the experiment instead")
    value = override.value()
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        assert low is not None and high is not None
        log = "log" in value.tags
        if not low < high or (log and low <= 0):
            raise ConfigError(f"{where}: search.params.{key}: interval({low}, {high}) is "
                              "empty" + (" or not positive (log scale)" if log else "") +
                              "; give a low bound below the high one")
        kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
        return SearchParam(key, kind, float(low), float(high), log)
    if isinstance(value, RangeSweep) and not value.shuffle and all(
            isinstance(v, int) for v in (value.start, value.stop, value.step)):
        values = [int(v) for v in override.sweep_string_iterator()]
        if not values:
            raise ConfigError(f"{where}: search.params.{key}: '{text}' has no values; "
                              "range(a, b) stops before b")
        step = int(value.step or 1)
        return SearchParam(key, "int", float(min(values)), float(max(values)), False,
                           float(abs(step)))
    choices = tuple(override.sweep_string_iterator())
    if not choices:
        raise ConfigError(f"{where}: search.params.{key}: '{text}' has no values")
    return SearchParam(key, "categorical", choices=choices)


def parse_search(config: Mapping[str, Any], source: str, config_dir: Path,
                 scorer_names: Sequence[str]) -> SearchSpec:
    """The search of a validated experiment config; every mistake is one line naming
    `source` (the file or override that declared the block) and the fix."""
    block = config.get("search")
    if not block:
        raise ConfigError(f"{source}: no 'search:' block; add one (params, objective, "
                          "trials), e.g. +experiment=search-temperature")
    params = block.get("params") or {}
    if not params:
        raise ConfigError(f"{source}: search.params is empty; add e.g. "
                          "grid.params.temperature: interval(0.0, 1.0)")
    for key in params:
        try:
            check_overrides([f"{key}=0"], config_dir)  # an unknown key, with the closest one
        except ConfigError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise ConfigError(f"{source}: search.params.{key}: {reason}") from None
    space = tuple(_param(str(k), str(v), source) for k, v in params.items())
    objectives = _names(block.get("objective"))
    known = [*scorer_names, *BUILTIN_OBJECTIVES]
    if not 1 <= len(objectives) <= 2:
        raise ConfigError(f"{source}: search.objective: give one objective or a list of two "
                          f"(a Pareto front); one of {', '.join(known)}")
    for name in objectives:
        if name not in known:
            raise ConfigError(f"{source}: search.objective: '{name}' is not a scorer of this "
                              f"experiment nor a built-in objective; use one of "
                              f"{', '.join(known)}")
    if len(set(objectives)) < len(objectives):
        raise ConfigError(f"{source}: search.objective: '{objectives[0]}' twice; a Pareto "
                          "front needs two different objectives, or give just one")
    directions = _names(block.get("direction"))
    if len(directions) == 1 and len(objectives) == 2:
        raise ConfigError(f"{source}: search.direction: two objectives need two directions, "
                          "e.g. direction: [maximize, minimize]")
    if len(directions) != len(objectives) or any(d not in DIRECTIONS for d in directions):
        raise ConfigError(f"{source}: search.direction: {block.get('direction')!r}; give "
                          f"maximize or minimize for each objective")
    trials, parallel = int(block.get("trials", 0)), int(block.get("parallel", 1))
    if trials < 1:
        raise ConfigError(f"{source}: search.trials: {trials}; give at least 1 trial")
    if parallel < 1:
        raise ConfigError(f"{source}: search.parallel: {parallel}; give at least 1")
    sampler = str(block.get("sampler") or "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{source}: search.sampler: '{sampler}'; use one of "
                          f"{', '.join(SAMPLERS)}")
    seed = block.get("seed")
    return SearchSpec(space, tuple(objectives), tuple(directions), trials, parallel,
                      None if seed is None else int(seed), sampler, source)


def trial_overrides(params: Mapping[str, Any]) -> list[str]:
    """Hydra overrides that put one sampled point into an experiment."""
    out = []
    for key, value in params.items():
        text = repr(value) if isinstance(value, float) else str(value)
        out.append(f"{key}=[{text}]" if key.startswith("grid.params.") and
                   not text.startswith("[") else f"{key}={text}")
    return out


def search_source(choices: Mapping[str, Any], config_dir: Path,
                  overrides: Sequence[str]) -> str:
    """Where the ``search:`` block came from: the recipe chosen, else config.yaml."""
    for o in overrides:
        if o.lstrip("+").startswith("search"):
            return o
    experiment = choices.get("experiment")
    rel = f"experiment/{experiment}.yaml" if isinstance(experiment, str) else "config.yaml"
    return display(config_dir / rel)
