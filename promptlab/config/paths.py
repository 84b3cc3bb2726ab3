"""Dotted paths into the schema: which settings exist, and which keys a level has.

A path is a list of keys, as in ``models.oa.server.n_ctx`` or ``prompts.p.messages[0].role``
(list indexes are keys too). Under a ``dict[str, Settings]`` field the next key is a name
the user chose (a model alias, a prompt name); under ``dict[str, Any]`` and ``Any`` every
key is open (API parameters, template variables).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from promptlab.config.schema import ExperimentConfig

__all__ = ["Unknown", "fields_of", "is_settings", "join_key", "lookup", "split_key", "unwrap"]

_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Unknown:
    """A key the schema does not have: where it is, and the keys that level does have."""

    level: str  # the dotted path of the mapping holding the key ("" at the top)
    key: str
    valid: tuple[str, ...]

    @property
    def full(self) -> str:
        return join_key(self.level, self.key)


def split_key(full_key: str) -> list[str]:
    """``a.b[0].c`` -> ``["a", "b", "0", "c"]``."""
    return [p for p in _INDEX.sub(r".\1", full_key).split(".") if p]


def join_key(level: str, key: str | int) -> str:
    """The dotted key of `key` under `level`; an int is a list index (``messages[0]``)."""
    if isinstance(key, int):
        return f"{level}[{key}]"
    return f"{level}.{key}" if level else key


def is_settings(hint: Any) -> bool:
    """Whether a type is one of the schema's settings dataclasses."""
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


@functools.cache
def fields_of(settings: Any) -> dict[str, Any]:
    """The settings dataclass's keys and their types (do not change the dict)."""
    return typing.get_type_hints(settings)


def unwrap(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (hint, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def lookup(parts: list[str], root: Any = ExperimentConfig) -> Unknown | None:
    """None when the schema has this path (or it lies under an open mapping), else where the
    path leaves the schema."""
    node: Any = root
    level = ""
    i = 0
    while i < len(parts):
        if not is_settings(node):
            return None
        hints = fields_of(node)
        key = parts[i]
        if key not in hints:
            return Unknown(level, key, tuple(sorted(hints)))
        level = join_key(level, key)
        hint, _ = unwrap(hints[key])
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (dict, list):
            inner = args[-1] if args else Any
            if not is_settings(inner):
                return None
            if i + 1 < len(parts):
                name = parts[i + 1]
                level = join_key(level, int(name) if origin is list and name.isdigit() else name)
            node, i = inner, i + 2
            continue
        node, i = hint, i + 1
    return None
