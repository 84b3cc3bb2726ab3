"""Compose an experiment config with Hydra and validate it against the schema.

Every failure becomes a one-line `ConfigError` naming the file (or the command-line
override) and the key, because Hydra's own reports (multi-line, exit code 1) are not what
a user of a batch tool wants to read. The steps: overrides are checked against the schema
(`overrides`), Hydra composes, the raw values are checked for shape (`shapes`), OmegaConf
merges them onto the schema, and the value rules and formats are checked (`checks`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.config import checks, memo, messages, shapes
from promptlab.config.locate import Locator, source_file
from promptlab.config.overrides import check as check_overrides
from promptlab.config.overrides import force
from promptlab.config.schema import ExperimentConfig
from promptlab.errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["LoadedConfig", "load", "validate", "find_experiments_dir", "source_file"]


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


def load(
    config_dir: Path, overrides: list[str] | tuple[str, ...] = (), config_name: str = "config"
) -> LoadedConfig:
    """Compose `config_name` from `config_dir` with Hydra overrides, then validate it.

    The validated config of the same files and overrides is recalled when it was kept
    (`promptlab.config.memo`): such a command imports neither Hydra nor OmegaConf."""
    given = tuple(overrides)
    check_overrides(given, config_dir)
    name = memo.key(config_dir, config_name, given)
    recalled = memo.recall(name) if name else None
    if recalled is not None:
        choices, validated = recalled
        return LoadedConfig(validated, given, choices, config_dir)
    composed = _compose(config_dir, config_name, given)
    plain = validate(_omega(composed.config), composed.choices, config_dir, given)
    # Kept only when the files did not change while Hydra read them.
    if (name and composed.keep and memo.storable(composed.config, plain)
            and memo.key(config_dir, config_name, given) == name):
        memo.remember(name, composed.choices, plain)
    return LoadedConfig(plain, given, composed.choices, config_dir)


def _omega(composed: dict[str, Any]) -> DictConfig:
    from omegaconf import OmegaConf

    return OmegaConf.create(composed)


@dataclass(frozen=True)
class _Composed:
    choices: dict[str, Any]  # the experiment's group choices (Hydra's own left out)
    config: dict[str, Any]  # unresolved, without Hydra's own node
    keep: bool  # read only the experiments directory's files, and no warning


# Hydra's warnings shown in this process (`_compose`): `catch_warnings` resets the
# registries that show a warning once, so the compose keeps its own.
_SHOWN: set[tuple[str, str, str, int]] = set()


def _compose(config_dir: Path, config_name: str, given: tuple[str, ...]) -> _Composed:
    """Hydra's composition; Hydra loads here, and only when nothing was recalled.

    Not to be kept (`keep`): a composition that read a config from anywhere but the
    experiments directory's own files (`memo.read_only_here`: its defaults list and the
    search path Hydra used), or that Hydra warned about (a recalled one would not warn
    again). The warnings are recorded whatever the filters say, then shown through them
    once a process, as Hydra would have shown them."""
    import yaml
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    forced = [force(o) for o in given]
    try:
        with (warnings.catch_warnings(record=True) as warned,
              initialize_config_dir(version_base="1.3", config_dir=str(config_dir))):
            warnings.simplefilter("always")
            cfg = compose(config_name, overrides=forced, return_hydra_config=True)
            read = _read(GlobalHydra.instance(), config_name, forced, RunMode.RUN)
    # Hydra lets YAML's errors, a file's decoding error and a bad defaults list's ValueError
    # through unwrapped; each is a mistake in the user's files.
    except (HydraException, OmegaConfBaseException, yaml.YAMLError, OSError,
            ValueError) as exc:
        raise messages.compose_error(exc, config_dir, config_name, given) from None
    finally:
        GlobalHydra.instance().clear()
    for w in warned:
        seen = (str(w.message), w.category.__name__, w.filename, w.lineno)
        if seen not in _SHOWN:
            _SHOWN.add(seen)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    every = OmegaConf.to_container(cfg.hydra.runtime.choices)
    sources = OmegaConf.to_container(cfg.hydra.runtime.config_sources)
    assert isinstance(every, dict) and isinstance(sources, list)
    with_flag = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(with_flag, dict)
    with_flag.pop("hydra", None)
    return _Composed({str(k): v for k, v in every.items() if not str(k).startswith("hydra/")},
                     {str(k): v for k, v in with_flag.items()},
                     not warned and read is not None
                     and memo.read_only_here(config_dir, read, sources))


def _read(hydra: Any, config_name: str, forced: list[str], mode: Any) -> list[str] | None:
    """The config paths of the composition's defaults list (None: not known, so not kept;
    asking never fails a composition that succeeded)."""
    try:
        defaults = hydra.config_loader().compute_defaults_list(config_name, forced, mode)
        return [d.config_path for d in defaults.defaults if d.config_path]
    except Exception:  # noqa: BLE001
        return None


def validate(cfg: DictConfig, choices: dict[str, Any], config_dir: Path,
             given: Sequence[str] = ()) -> dict[str, Any]:
    """Check `cfg` against the schema and the value rules; return plain Python containers.

    `given` are the command-line overrides: an error in a key one of them set names it.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    where = Locator(choices, config_dir, given)
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    raw = shapes.normalize({str(k): v for k, v in raw.items()}, where)
    schema = OmegaConf.structured(ExperimentConfig)
    try:
        merged = OmegaConf.merge(schema, OmegaConf.create(raw))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            key = missing[0]
            raise ConfigError(
                f"{where(key)}: {key} is required but not set; "
                "add it to that file or pass it as an override"
            )
        plain = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        raise messages.validation_error(exc, where) from None
    assert isinstance(plain, dict)
    config = {str(k): v for k, v in plain.items()}
    checks.check(config, where)
    return config
