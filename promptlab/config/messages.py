"""Hydra's, OmegaConf's and YAML's exceptions as one-line user errors.

Their own reports are multi-line, point into the schema or Hydra's internals, and suggest
fixes that do not apply ("To append to your config use +key"); these name the file or the
override, the key, and a fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from promptlab.config.files import display, find_unreadable, groups, options, printable
from promptlab.config.locate import Where
from promptlab.config.overrides import force, key_of
from promptlab.config.paths import lookup, split_key
from promptlab.config.suggest import closest, listing, unknown_key, unknown_option
from promptlab.errors import ConfigError

if TYPE_CHECKING:
    import yaml
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

__all__ = ["compose_error", "one_line", "validation_error"]

_QUOTING = ("quote a value that holds ': ' or ' #', or that starts with one of "
            "[ { & * ! | > ' \" % @")


def one_line(exc: BaseException) -> str:
    """An exception's first line, with Hydra's fix from a later line when it gives one
    ("To append to your config use +experiment=x": right for a group the defaults list
    lacks; a mistyped setting never gets this far, see `promptlab.config.overrides`)."""
    msg = str(getattr(exc, "msg", "") or exc)
    lines = [line.strip() for line in msg.strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    hints = [line.rstrip(".") for line in lines[1:]
             if line.lower().startswith(("to append", "did you mean"))]
    return "; ".join([lines[0].rstrip("."), *hints])


def compose_error(exc: BaseException, config_dir: Path, config_name: str,
                  overrides: Sequence[str]) -> ConfigError:
    """The one-line error for a failure inside Hydra's compose."""
    import yaml
    from hydra.errors import MissingConfigException, OverrideParseException

    primary = display(config_dir / f"{config_name}.yaml")
    if isinstance(exc, yaml.MarkedYAMLError):
        return ConfigError(_yaml(exc, primary))
    if isinstance(exc, MissingConfigException) and "/" in (exc.missing_cfg_file or ""):
        return ConfigError(_missing(exc, config_dir, overrides))
    if isinstance(exc, OverrideParseException):
        detail = [line for line in exc.message.splitlines()
                  if line.strip() and not line.startswith(("Error parsing", "See "))]
        reason = f" ({detail[0].strip()})" if detail else ""
        given = next((o for o in overrides if force(o) == exc.override), exc.override)
        return ConfigError(f"{printable(given)}: cannot parse this override{reason}; write "
                           "KEY=VALUE, and quote a value with spaces or brackets: "
                           "'key=\"a b\"'")
    if isinstance(exc, UnicodeDecodeError | OSError):
        found = find_unreadable(config_dir)
        if found is not None:
            return ConfigError(found)
    where = _overridden(str(exc), overrides) or _parent(str(exc), config_dir) or primary
    return ConfigError(f"{where}: {one_line(exc)}; check the defaults list and the "
                       "command-line overrides")


def _overridden(text: str, overrides: Sequence[str]) -> str | None:
    """The override of "Could not override 'experiment'" in a Hydra message."""
    match = re.search(r"override '([^']+)'", text)
    if match is None:
        return None
    return next((printable(o) for o in overrides if key_of(o) == match[1]), None)


def _yaml(exc: yaml.MarkedYAMLError, primary: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    name = getattr(mark, "name", None)
    where = display(Path(name)) if name and not name.startswith("<") else primary
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = " ".join(str(exc.problem or "invalid YAML").split())
    context = ""
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        context = f" ({exc.context} from line {exc.context_mark.line + 1})"
    return f"{where}{line}: YAML syntax error: {problem}{context}; fix it ({_QUOTING})"


def _parent(text: str, config_dir: Path) -> str | None:
    """The file of "In 'experiment/x'" in a Hydra message."""
    match = re.search(r"\bin '([^']+)'", text, re.IGNORECASE)
    if match and (config_dir / f"{match[1]}.yaml").is_file():
        return display(config_dir / f"{match[1]}.yaml")
    return None


def _missing(exc: MissingConfigException, config_dir: Path, overrides: Sequence[str]) -> str:
    group, _, option = (exc.missing_cfg_file or "").rpartition("/")
    chosen_by = next((o for o in reversed(overrides) if _chooses(o, group, option)), None)
    parent = _parent(str(exc), config_dir) or display(config_dir)
    where = printable(chosen_by) if chosen_by else f"{parent}: defaults"
    folder = config_dir / group
    if not folder.is_dir():
        names = groups(config_dir)
        guess = closest(group, names)
        hint = f" did you mean {guess}?" if guess else ""
        return (f"{where}: there is no config group {group!r} (no folder "
                f"{display(folder)}/);{hint} Groups: {listing(names)}")
    problem = unknown_option(group, option, options(config_dir, group), display(folder) + "/")
    return f"{where}: {problem}"


def _chooses(override: str, group: str, option: str) -> bool:
    key = key_of(override)
    if key is None or key.split("@")[0] != group:
        return False
    value = override.split("=", 1)[1]
    return option in re.split(r"[\s\[\],]+", value)


def validation_error(exc: OmegaConfBaseException, where: Where) -> ConfigError:
    """The one-line error for a config that does not fit the schema."""
    from omegaconf.errors import ConfigKeyError

    key = str(getattr(exc, "full_key", "") or "")
    if isinstance(exc, ConfigKeyError) or "not in" in one_line(exc):
        unknown = lookup(split_key(key))
        if unknown is not None:
            return ConfigError(f"{where(key)}: {unknown_key(unknown)}")
    text = one_line(exc)
    fix = "fix the value"
    if "to Integer" in text:
        fix = "give a whole number"
    elif "to Float" in text:
        fix = "give a number"
    elif "bool" in text.lower():
        fix = "give true or false"
    return ConfigError(f"{where(key)}: {key or 'config'}: {text}; {fix}")
