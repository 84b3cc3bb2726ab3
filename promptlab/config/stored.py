"""A stored run's config, brought back through today's schema.

A run stored before a setting existed gets its default; `run.*` overrides (resume may
change how a run is sent, never what is sent) are merged on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptlab.config.loading import LoadedConfig, validate
from promptlab.errors import UserError
from promptlab.redaction import redact_config

__all__ = ["from_stored", "to_yaml"]


def from_stored(config: dict[str, Any], overrides: list[str], stored_overrides: list[str],
                choices: dict[str, Any], config_dir: Path) -> LoadedConfig:
    """The stored config re-validated, with `overrides` of run.* settings only."""
    from omegaconf import OmegaConf

    merged = OmegaConf.create(config)
    if overrides:
        bad = [o for o in overrides if not o.lstrip("+").startswith("run.")]
        if bad:
            raise UserError(f"{bad[0]}: only run.* settings can change when resuming a run; "
                            "start a new run to change the experiment")
        merged = OmegaConf.merge(merged,  # type: ignore[assignment]
                                 OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
    plain = validate(merged, choices, config_dir, tuple(overrides))
    return LoadedConfig(plain, tuple(stored_overrides), choices, config_dir)


def to_yaml(config: dict[str, Any]) -> str:
    """A plain config as YAML (for --cfg and show --config), every secret setting's value
    redacted (secret headers, API keys in URLs, secret params)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(redact_config(config)))
