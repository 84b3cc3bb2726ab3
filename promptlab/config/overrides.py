"""Command-line overrides: checked against the schema before Hydra sees them.

Hydra answers a mistyped ``run.concurency=8`` with "To append to your config use +...",
which is the wrong fix for a setting the schema does not have, so unknown keys are caught
here, with the closest valid key. Group choices (``models=[a,b]``, ``+experiment=x``) are
left to Hydra; their unknown options are reported in `promptlab.config.messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promptlab.config.files import display, groups, printable
from promptlab.config.paths import fields_of, lookup, split_key
from promptlab.config.schema import ExperimentConfig
from promptlab.config.suggest import closest, listing, unknown_key
from promptlab.errors import ConfigError

__all__ = ["check", "force", "hydra_overrides", "is_setting", "key_of", "setter_of",
           "task_overrides"]


def key_of(override: str) -> str | None:
    """The key an override sets (``+run.x=1`` -> ``run.x``); None without ``=``."""
    if "=" not in override:
        return None
    return override.split("=", 1)[0].lstrip("+~")


def hydra_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides addressed to Hydra itself (launcher, sweeper, their settings)."""
    return [o for o in overrides if (key_of(o) or "").lstrip("+~").startswith("hydra")]


def task_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides of the experiment itself."""
    hydra = set(hydra_overrides(overrides))
    return [o for o in overrides if o not in hydra]


def is_setting(key: str, config_dir: Path) -> bool:
    """A key that sets a value, not a group choice (``run=fast``) or Hydra's own."""
    if "@" in key or "/" in key or key.startswith("hydra"):
        return False
    return "." in key or key not in groups(config_dir)


def check(overrides: Sequence[str], config_dir: Path) -> None:
    """Refuse an override of a key the schema does not have, naming the closest one."""
    top = sorted(fields_of(ExperimentConfig))
    for override in overrides:
        key = key_of(override)
        if key is None or override.startswith("~") or not is_setting(key, config_dir):
            continue
        parts = split_key(key)
        if len(parts) == 1 and parts[0] not in top:
            names = groups(config_dir)
            guess = closest(parts[0], [*top, *names])
            hint = f" did you mean {guess}?" if guess else ""
            raise ConfigError(
                f"{printable(override)}: {parts[0]} is neither a setting nor a config group "
                f"(there is no folder {display(config_dir / parts[0])}/);{hint} Settings: "
                f"{listing(top)}; groups: {listing(names)}")
        unknown = lookup(parts)
        if unknown is not None:
            raise ConfigError(f"{printable(override)}: {unknown_key(unknown)}")


def force(override: str) -> str:
    """`run.cache=off` -> `++run.cache=off` when the schema knows the key, so settings left
    at their defaults (absent from the YAML files) can be set without Hydra's `+`."""
    if override[:1] in "+~" or "=" not in override:
        return override
    key = override.split("=", 1)[0]
    parts = key.split(".")
    if len(parts) < 2 or "@" in key or "/" in key or lookup(parts) is not None:
        return override
    return "++" + override


def setter_of(full_key: str, overrides: Sequence[str], config_dir: Path) -> str | None:
    """The last override that set `full_key` or a mapping holding it, if any."""
    target = split_key(full_key)
    for override in reversed(overrides):
        key = key_of(override)
        if key is None or override.startswith("~") or not is_setting(key, config_dir):
            continue
        parts = split_key(key)
        if parts and target[:len(parts)] == parts:
            return override
    return None
