"""Suggestions for mistyped names: the closest valid one, and the list to choose from."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from promptlab.config.files import printable
from promptlab.config.paths import Unknown, join_key, split_key

__all__ = ["closest", "listing", "unknown_key", "unknown_option"]

# Common API parameters: a model file's `temperature: 0` belongs under `params:`.
API_PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "seed",
              "stop", "n", "presence_penalty", "frequency_penalty", "logprobs",
              "response_format")


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option most like `word` (difflib), ignoring case; None when none is close."""
    by_lower = {o.lower(): o for o in options}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def listing(options: Iterable[str]) -> str:
    return ", ".join(sorted(options)) or "none"


def unknown_key(unknown: Unknown) -> str:
    """`run.concurency is not a setting; did you mean run.concurrency? valid keys in run: ...`"""
    text = f"{printable(unknown.full)} is not a setting"
    guess = closest(unknown.key, unknown.valid)
    level = split_key(unknown.level)
    if guess is not None:
        text += f"; did you mean {join_key(unknown.level, guess)}?"
    elif len(level) == 2 and level[0] == "models" and (
            param := closest(unknown.key, API_PARAMS)) is not None:
        text += (f"; API parameters go under params: did you mean "
                 f"{unknown.level}.params.{param}?")
    return f"{text} Valid keys in {unknown.level or 'the top level'}: {listing(unknown.valid)}"


def unknown_option(group: str, option: str, options: list[str], folder: str) -> str:
    """`models has no option 'nope'; the options are the files in experiments/models/: ...`"""
    guess = closest(option, options)
    hint = f" did you mean {guess!r}?" if guess is not None else ""
    return (f"{group} has no option {option!r};{hint} the options are the files in {folder}: "
            f"{listing(options)}; pick one, or add {folder}{option}.yaml")
