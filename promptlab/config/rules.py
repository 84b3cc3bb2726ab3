"""The value rules of every setting, as tables: numeric ranges, words, and what YAML does to
words such as ``off``.

A pattern is a dotted key where ``*`` stands for any model alias, prompt or scorer name, or
list index. `check` applies the tables to a resolved config; each broken rule is one line
naming where the value came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from promptlab.config.locate import Where
from promptlab.config.paths import join_key, split_key
from promptlab.config.suggest import closest
from promptlab.errors import ConfigError

__all__ = ["BOOLEAN_WORDS", "CHOICES", "ORDERED", "RANGES", "Range", "check", "either",
           "matches", "values"]


@dataclass(frozen=True)
class Range:
    """A number's allowed range; every number must also be finite. None is always allowed
    where the schema allows it, and `none` says what it means."""

    pattern: str
    low: float | None = None
    above: bool = False  # strictly greater than `low`
    none: str | None = None

    def problem(self, value: float) -> str | None:
        if not math.isfinite(value):
            return "must be a finite number" + (f" (or null for {self.none})" if self.none else "")
        if self.low is None or value > self.low or (value == self.low and not self.above):
            return None
        low = f"{self.low:g}"
        bound = f"greater than {low}" if self.above else f"at least {low}"
        return f"is out of range; it must be {bound}" + (
            f" (or null for {self.none})" if self.none else "")


RANGES: tuple[Range, ...] = (
    Range("run.concurrency", 1),
    Range("run.batch_size", 1),
    Range("run.timeout_s", 0, above=True),
    Range("run.max_attempts", 1),
    Range("run.shards", 1),
    Range("run.backoff_base_s", 0),
    Range("run.backoff_max_s", 0),
    Range("run.max_calls", 1, none="no limit"),
    Range("run.max_cost_usd", 0, none="no limit"),
    Range("dataset.limit", 1, none="every row"),
    Range("grid.repeats", 1),
    Range("models.*.max_concurrency", 1, none="no limit"),
    Range("models.*.rpm", 0, above=True, none="no limit"),
    Range("models.*.tpm", 0, above=True, none="no limit"),
    Range("models.*.timeout_s", 0, above=True, none="run.timeout_s"),
    Range("models.*.price.input_per_mtok", 0),
    Range("models.*.price.output_per_mtok", 0),
    Range("models.*.price.batch_discount", 0, above=True),
    Range("models.*.price.cached_input_per_mtok", 0, none="input_per_mtok"),
    Range("models.*.price.cache_write_per_mtok", 0, none="input_per_mtok"),
    Range("models.*.server.ready_timeout_s", 0, above=True),
    Range("models.*.server.latency_ms", 0),
    Range("models.*.server.n_ctx", 1),
    Range("models.*.server.n_parallel", 1),
    Range("scorers.*.threshold", none="no threshold"),
    Range("prompts.*.scorers.*.threshold", none="no threshold"),
)

# (lower, upper), exact keys: the upper setting may not be below the lower one.
ORDERED: tuple[tuple[str, str], ...] = (("run.backoff_base_s", "run.backoff_max_s"),)

# Settings that take one of a few words (None, where the schema allows it, is fine).
CHOICES: dict[str, tuple[str, ...]] = {
    "run.cache": ("off", "read", "readwrite"),
    "models.*.endpoint": ("chat", "completions", "responses"),
    "models.*.server.kind": ("mock", "llamacpp", "command"),
    "models.*.server.fallback": ("mock",),
    "prompts.*.messages.*.role": ("system", "user", "assistant"),
}

# YAML 1.1 reads unquoted off/no/false as False and on/yes/true as True; where a text
# setting has a meaning for such a boolean, this is it. Any other boolean in a text setting
# is refused with "quote it".
BOOLEAN_WORDS: dict[str, dict[bool, str | None]] = {
    "run.cache": {False: "off"},
    "models.*.server.fallback": {False: None},
}


def matches(pattern: str, key: str) -> bool:
    want, have = split_key(pattern), split_key(key)
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))


def values(config: Any, pattern: str, level: str = "") -> Iterator[tuple[str, Any]]:
    """(full key, value) for every key of `config` the pattern matches."""
    first, _, rest = pattern.partition(".")
    if isinstance(config, dict):
        items: list[tuple[str | int, Any]] = list(config.items())
    elif isinstance(config, list):
        items = list(enumerate(config))
    else:
        return
    for name, value in items:
        if first not in ("*", str(name)):
            continue
        key = join_key(level, name)
        if rest:
            yield from values(value, rest, key)
        else:
            yield key, value


def either(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check(config: dict[str, Any], where: Where) -> None:
    """Raise a one-line ConfigError for the first value that breaks a rule."""
    for rule in RANGES:
        for key, value in values(config, rule.pattern):
            if isinstance(value, int | float) and not isinstance(value, bool):
                problem = rule.problem(value)
                if problem is not None:
                    raise ConfigError(f"{where(key)}: {key}: {value!r} {problem}")
    for lower_key, upper_key in ORDERED:
        lower, upper = dict(values(config, lower_key)), dict(values(config, upper_key))
        low, high = lower.get(lower_key), upper.get(upper_key)
        if isinstance(low, int | float) and isinstance(high, int | float) and high < low:
            raise ConfigError(f"{where(upper_key)}: {upper_key}: {high!r} is less than "
                              f"{lower_key} ({low!r}); it must be at least that")
    for pattern, words in CHOICES.items():
        for key, value in values(config, pattern):
            if value is not None and value not in words:
                guess = closest(str(value), words)
                hint = f"did you mean {guess}? " if guess else ""
                raise ConfigError(f"{where(key)}: {key}: {value!r} is not allowed; {hint}use "
                                  f"{either(words)}")
