"""The tool_call scorer: did the model call the expected tool with the expected arguments?

The expected name is the scorer's ``name`` or the dataset row's ``field`` (default
``expected_tool``); the expected arguments are the scorer's ``arguments`` or the row's
``expected_arguments`` (a mapping; absent: any arguments). A call passes when its name
matches and every expected argument is among its arguments with an equal value (nested
mappings compare as subsets too). The first call that passes counts; value 1.0 or 0.0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptlab.errors import UserError

__all__ = ["subset", "tool_call_scorer"]

Verdict = tuple[float, bool, dict[str, Any]]
Check = Callable[[str, dict[str, Any], dict[str, Any], dict[str, Any]], Verdict]


def subset(expected: Any, got: Any) -> bool:
    """Every key of `expected` in `got` with an equal value (mappings recursively)."""
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(
            k in got and subset(v, got[k]) for k, v in expected.items())
    return bool(expected == got)


def tool_call_scorer(name: str, cfg: dict[str, Any], where: str) -> Check:
    """A check returning (value, passed, detail); scorers.py makes a Score of it."""
    if cfg.get("arguments") is not None and not isinstance(cfg["arguments"], dict):
        raise UserError(f"{where}: scorers.{name}.arguments must be a mapping of argument "
                        "names to expected values")
    field = cfg.get("field") or "expected_tool"

    def check(output: str, row: dict[str, Any], params: dict[str, Any],
              result: dict[str, Any]) -> Verdict:
        want = cfg.get("name") or row.get(field)
        if not want:
            raise KeyError(f"dataset row has no '{field}' field (or give the scorer a name)")
        args = cfg.get("arguments")
        if args is None:
            args = row.get("expected_arguments") or {}
        calls = result.get("tool_calls") or []
        ok = any(c.get("name") == want and subset(args, c.get("arguments")) for c in calls)
        detail = {"expected": {"name": want, "arguments": args},
                  "calls": [{"name": c.get("name"), "arguments": c.get("arguments")}
                            for c in calls]}
        return (1.0 if ok else 0.0), ok, detail
    return check
