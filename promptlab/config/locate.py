"""Where a setting came from, for error messages: the override that set it, or its file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from promptlab.config.files import display, printable
from promptlab.config.overrides import setter_of

__all__ = ["Locator", "Where", "source_file"]

# Groups whose options are keyed by name in the composed config (multi-select).
KEYED_GROUPS = ("models", "prompts")
# Groups whose single chosen option fills one top-level key.
SINGLE_GROUPS = ("dataset", "grid", "run")

# A full key ("run.concurrency") -> where to tell the user to look.
Where = Callable[[str], str]


def source_file(full_key: str, choices: dict[str, Any], config_dir: Path) -> str:
    """Best guess at the config file a key came from, for error messages."""
    parts = full_key.split(".") if full_key else []
    rel: str | None = None
    if len(parts) >= 2 and parts[0] in KEYED_GROUPS:
        rel = f"{parts[0]}/{parts[1].split('[')[0]}.yaml"
    elif parts and parts[0] in SINGLE_GROUPS and isinstance(choices.get(parts[0]), str):
        rel = f"{parts[0]}/{choices[parts[0]]}.yaml"
    if rel is None or not (config_dir / rel).is_file():
        experiment = choices.get("experiment")
        rel = f"experiment/{experiment}.yaml" if isinstance(experiment, str) else "config.yaml"
    return display(config_dir / rel)


class Locator:
    """A `Where`: the command-line override that set a key, else the file it came from."""

    def __init__(self, choices: dict[str, Any], config_dir: Path,
                 overrides: Sequence[str] = ()) -> None:
        self.choices = choices
        self.config_dir = config_dir
        self.overrides = tuple(overrides)

    def __call__(self, full_key: str) -> str:
        override = setter_of(full_key, self.overrides, self.config_dir)
        if override is not None:
            return printable(override)
        return source_file(full_key, self.choices, self.config_dir)
