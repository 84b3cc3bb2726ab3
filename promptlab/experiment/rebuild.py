"""Rebuild a run's experiment from the database alone, and check it against the disk.

The database holds the fully resolved config, the overrides and the contents of every
template and dataset file, so a run can be resumed or reproduced in an empty directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promptlab.canonical import sha256_hex
from promptlab.config.loading import LoadedConfig, load
from promptlab.config.stored import from_stored
from promptlab.errors import UserError
from promptlab.experiment.prepare import Prepared, prepare
from promptlab.redaction import REDACTED, Scrubber, redact_config
from promptlab.store import RunInfo, Store

__all__ = ["RESULT_NEUTRAL_KEYS", "check_against_disk", "config_differences", "from_database",
           "redacted_keys"]

# Settings that cannot change an answer: a resume may change them.
RESULT_NEUTRAL_KEYS = ("run", "db")


def from_database(store: Store, run_id: str, overrides: list[str] | None = None,
                  check_api_keys: bool = True) -> tuple[RunInfo, Prepared]:
    """The run's experiment as it was, plus `overrides` of run.* settings only."""
    info = store.run(run_id)
    choices = info.manifest.get("choices", {})
    config_dir = Path(info.manifest.get("project_dir", ".")) / "experiments"
    loaded = from_stored(info.config, list(overrides or ()), list(info.overrides), choices,
                         config_dir)
    prepared = prepare(loaded, stored=store.artifacts(run_id), check_api_keys=check_api_keys)
    return info, prepared


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two plain configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += config_differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _neutral(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RESULT_NEUTRAL_KEYS}


def redacted_keys(config: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose stored value was a secret (stored as the redaction marker)."""
    if isinstance(config, dict):
        return [k for key, v in config.items() for k in redacted_keys(v, f"{prefix}{key}.")]
    if isinstance(config, list):
        return [k for i, v in enumerate(config) for k in redacted_keys(v, f"{prefix}{i}.")]
    return [prefix.rstrip(".")] if isinstance(config, str) and REDACTED in config else []


def check_against_disk(info: RunInfo, prepared: Prepared, experiments: Path | None
                       ) -> LoadedConfig | None:
    """Refuse to resume when the experiment on disk no longer matches the stored run;
    returns the config on disk (None when there is none). Secrets compare redacted, as
    they were stored."""
    if experiments is None or not (experiments / "config.yaml").is_file():
        return None
    current = load(experiments, list(info.overrides))
    scrub = Scrubber(prepare(current, check_api_keys=False).spec.models)
    on_disk = json.loads(scrub(json.dumps(redact_config(current.config))) or "{}")
    diffs = config_differences(_neutral(info.config), _neutral(on_disk))
    if diffs:
        raise UserError(
            f"{experiments / 'config.yaml'}: run {info.id} was made with a different config "
            f"({', '.join(diffs[:3])} changed); restore it, or start a new run with "
            "'promptlab run' (finished calls come from the cache)")
    disk = prepare(current, check_api_keys=False).artifacts  # templates and datasets
    for name, content in prepared.artifacts.items():
        if name in disk and sha256_hex(disk[name]) != sha256_hex(content):
            raise UserError(
                f"{name.split(':', 1)[1]}: changed since run {info.id}; restore it, or start "
                "a new run with 'promptlab run' (finished calls come from the cache)")
    return current
