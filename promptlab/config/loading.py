"""Compose an experiment config with Hydra and validate it against the schema.

Every failure becomes a one-line `ConfigError` naming the file and key, because Hydra's
own reports (multi-line, exit code 1) are not what a user of a batch tool wants to read.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from promptlab.config.schema import ExperimentConfig
from promptlab.errors import ConfigError

__all__ = ["LoadedConfig", "load", "validate", "find_experiments_dir", "source_file"]

# Groups whose options are keyed by name in the composed config (multi-select).
_KEYED_GROUPS = ("models", "prompts")
# Groups whose single chosen option fills one top-level key.
_SINGLE_GROUPS = ("dataset", "grid", "run")


@dataclass(frozen=True)
class LoadedConfig:
    """A composed, validated experiment config and where it came from."""

    config: dict[str, Any]
    overrides: tuple[str, ...]
    choices: dict[str, Any]
    config_dir: Path

    @property
    def root(self) -> Path:
        """The project directory: templates and datasets resolve against it."""
        return self.config_dir.parent


def find_experiments_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The experiments directory: the one given, else ./experiments."""
    path = Path(explicit) if explicit else Path.cwd() / "experiments"
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"{path / 'config.yaml'}: no experiment config here; run promptlab from a project "
            "directory that has experiments/config.yaml, or pass --experiments DIR"
        )
    return path.resolve()


def source_file(full_key: str, choices: dict[str, Any], config_dir: Path) -> str:
    """Best guess at the config file a key came from, for error messages."""
    parts = full_key.split(".") if full_key else []
    rel: str | None = None
    if len(parts) >= 2 and parts[0] in _KEYED_GROUPS:
        rel = f"{parts[0]}/{parts[1]}.yaml"
    elif parts and parts[0] in _SINGLE_GROUPS and isinstance(choices.get(parts[0]), str):
        rel = f"{parts[0]}/{choices[parts[0]]}.yaml"
    if rel is None or not (config_dir / rel).is_file():
        experiment = choices.get("experiment")
        rel = f"experiment/{experiment}.yaml" if isinstance(experiment, str) else "config.yaml"
    return _display(config_dir / rel)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load(
    config_dir: Path, overrides: list[str] | tuple[str, ...] = (), config_name: str = "config"
) -> LoadedConfig:
    """Compose `config_name` from `config_dir` with Hydra overrides, then validate it."""
    overrides = tuple(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
            cfg = compose(config_name, overrides=[_force(o) for o in overrides],
                          return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(
            f"{_display(config_dir / (config_name + '.yaml'))}: {_one_line(exc)}; check the "
            "defaults list and the command-line overrides"
        ) from None
    finally:
        GlobalHydra.instance().clear()
    choices = {
        str(k): v for k, v in OmegaConf.to_container(cfg.hydra.runtime.choices).items()  # type: ignore[union-attr]
        if not str(k).startswith("hydra/")
    }
    with_flag = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(with_flag, dict)
    with_flag.pop("hydra", None)
    plain = validate(OmegaConf.create(with_flag), choices, config_dir)
    return LoadedConfig(plain, overrides, choices, config_dir)


def _schema_knows(path: list[str]) -> bool:
    """Whether a dotted path names a setting of the schema (values of dicts are open)."""
    node: Any = ExperimentConfig
    i = 0
    while i < len(path):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        if path[i] not in hints:
            return False
        hint = hints[path[i]]
        origin = typing.get_origin(hint)
        if origin is dict:
            value_type = typing.get_args(hint)[1]
            if not dataclasses.is_dataclass(value_type):
                return True
            node, i = value_type, i + 2  # skip the dict key (a model alias, a prompt name)
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        node = args[0] if origin is not None and args else hint
        i += 1
    return True


def _force(override: str) -> str:
    """`run.cache=off` -> `++run.cache=off` when the schema knows the key, so settings left
    at their defaults (absent from the YAML files) can be set without Hydra's `+`."""
    if override[:1] in "+~" or "=" not in override:
        return override
    key = override.split("=", 1)[0]
    parts = key.split(".")
    if len(parts) < 2 or "@" in key or "/" in key or not _schema_knows(parts):
        return override
    return "++" + override


def validate(cfg: DictConfig, choices: dict[str, Any], config_dir: Path) -> dict[str, Any]:
    """Merge onto the schema and resolve; return plain Python containers."""
    schema = OmegaConf.structured(ExperimentConfig)
    try:
        merged = OmegaConf.merge(schema, cfg)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            key = missing[0]
            raise ConfigError(
                f"{source_file(key, choices, config_dir)}: {key} is required but not set; "
                "add it to that file or pass it as an override"
            )
        plain = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        where = source_file(key, choices, config_dir)
        raise ConfigError(f"{where}: {key or 'config'}: {_hint(exc)}") from None
    assert isinstance(plain, dict)
    return {str(k): v for k, v in plain.items()}


def _hint(exc: OmegaConfBaseException) -> str:
    text = _one_line(exc)
    if "not in" in text or "Key '" in text and "not" in text:
        return f"{text}; remove or rename the key (see promptlab/config/schema.py for valid keys)"
    return f"{text}; fix the value"


def _one_line(exc: BaseException) -> str:
    msg = str(getattr(exc, "msg", "") or exc)
    lines = [line.strip() for line in msg.strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0].rstrip(".")
    # Hydra puts its own fix on a later line ("To append to your config use +key=value").
    hints = [line.rstrip(".") for line in lines[1:] if line.lower().startswith(("to append",
                                                                              "did you mean"))]
    if not hints and exc.__cause__ is not None and exc.__cause__ is not exc:
        cause = str(exc.__cause__).strip().splitlines()
        hints = [c.strip().rstrip(".") for c in cause if c.strip().lower().startswith(
            ("to append", "key '"))][:1]
    return "; ".join([text, *hints])
