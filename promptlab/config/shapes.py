"""YAML values against the schema's shapes, before OmegaConf merges them.

OmegaConf's own reports for a value of the wrong shape ("Cannot assign str to Dict[str,
Any]") often lose the key, and it turns a YAML boolean in a text setting into the text
"False". Walking the raw config first keeps the key: an unknown key is refused with the
closest valid one, a scalar where a mapping or list belongs is refused, and a boolean in a
text setting is mapped through `rules.BOOLEAN_WORDS` or refused with "quote it".
"""

from __future__ import annotations

import typing
from typing import Any

from promptlab.config.locate import Where
from promptlab.config.paths import Unknown, fields_of, is_settings, join_key, unwrap
from promptlab.config.rules import BOOLEAN_WORDS, CHOICES, either, matches
from promptlab.config.schema import ExperimentConfig
from promptlab.config.suggest import listing, unknown_key
from promptlab.errors import ConfigError

__all__ = ["normalize"]


def normalize(raw: dict[str, Any], where: Where) -> dict[str, Any]:
    """The raw config (changed in place) with YAML booleans in text settings mapped."""
    _walk(ExperimentConfig, raw, "", where)
    return raw


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"the value {value!r}"


def _skip(value: Any) -> bool:
    """None, a missing value or an interpolation: OmegaConf checks those itself."""
    return value is None or (isinstance(value, str) and (value == "???" or "${" in value))


def _walk(hint: Any, value: Any, key: str, where: Where) -> Any:
    hint, _ = unwrap(hint)
    if _skip(value):
        return value
    label = key or "the config"
    if is_settings(hint):
        fields = fields_of(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where(key)}: {label}: {_kind(value)} where a mapping of "
                              f"settings belongs; write key: value lines (keys: "
                              f"{listing(fields)})")
        for name in list(value):
            if name not in fields:
                unknown = Unknown(key, str(name), tuple(sorted(fields)))
                raise ConfigError(f"{where(unknown.full)}: {unknown_key(unknown)}")
            value[name] = _walk(fields[name], value[name], join_key(key, name), where)
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where(key)}: {label}: {_kind(value)} where a mapping belongs; "
                              "write name: value pairs")
        for name in list(value):
            value[name] = _walk(args[1], value[name], join_key(key, str(name)), where)
    elif origin is list:
        if not isinstance(value, list):
            example = "[a, b]" if isinstance(value, dict) else f"[{value}]"
            raise ConfigError(f"{where(key)}: {label}: {_kind(value)} where a list belongs; "
                              f"write it in brackets, e.g. {example}")
        for i, item in enumerate(value):
            value[i] = _walk(args[0], item, join_key(key, i), where)
    elif hint is str and isinstance(value, bool):
        return _boolean_word(key, value, where)
    return value


def _boolean_word(key: str, value: bool, where: Where) -> str | None:
    for pattern, meaning in BOOLEAN_WORDS.items():
        if matches(pattern, key) and value in meaning:
            return meaning[value]
    words = "on, yes or true" if value else "off, no or false"
    choices = next((w for p, w in CHOICES.items() if matches(p, key)), None)
    leaf = key.rsplit(".", 1)[-1]
    fix = (f"write {either(choices)}, in quotes if in doubt" if choices
           else f'quote it: {leaf}: "..."')
    raise ConfigError(f"{where(key)}: {key}: YAML reads an unquoted {words} as the boolean "
                      f"{str(value).lower()}, not as text; {fix}")
