"""A judge scorer's model config: one of the run's models or experiments/models/ALIAS.yaml,
validated through the schema like any model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptlab.config.files import display
from promptlab.config.loading import validate
from promptlab.config.schema import ModelConfig
from promptlab.errors import UserError

__all__ = ["judge_model_config"]


def judge_model_config(scorer: dict[str, Any], models: dict[str, Any], config_dir: Path,
                       choices: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(alias, validated model config) for a judge scorer's config.

    A stored ``model_config`` (a judge recorded with a run) wins over the disk, so a run
    is scored again as it was.
    """
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    alias = scorer["model"]
    cfg = scorer.get("model_config")
    if cfg is None and alias in models:
        cfg = dict(models[alias])
    if cfg is None:
        path = config_dir / "models" / f"{alias}.yaml"
        if not path.is_file():
            raise UserError(f"scorer judge model '{alias}': no such model in the run or in "
                            f"{path}; create it or pick another alias")
        try:
            loaded = OmegaConf.load(path)
        except (yaml.YAMLError, OmegaConfBaseException, OSError, UnicodeDecodeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{display(path)}: {first}; fix the YAML of judge model "
                            f"'{alias}'") from None
        merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), loaded)
        plain = OmegaConf.to_container(merged, resolve=True)
        assert isinstance(plain, dict)
        cfg = {str(k): v for k, v in plain.items()}
    checked = validate(OmegaConf.create({"models": {f"judge-{alias}": cfg}}), choices,
                       config_dir)
    name, model_cfg = next(iter(checked["models"].items()))
    return str(name), model_cfg
