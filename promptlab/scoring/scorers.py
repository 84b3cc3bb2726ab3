"""Scorers: pure functions from (output, dataset row, params) to a score.

A score has a value (a number, or None), passed (True/False, or None when the scorer
gives no verdict) and a detail dict. Every scorer is built from its config once; a scorer
that cannot be built (bad regex, missing function) is a user error before any call.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptlab.errors import UserError
from promptlab.scoring.tool_call import tool_call_scorer

__all__ = ["Score", "Scorer", "build_scorer", "SCORER_TYPES", "parse_judgement"]

SCORER_TYPES = ("exact", "contains", "regex", "json", "json_schema", "tool_call", "python",
                "judge")


@dataclass(frozen=True)
class Score:
    value: float | None
    passed: bool | None
    detail: dict[str, Any] = field(default_factory=dict)


ScoreFn = Callable[[str, dict[str, Any], dict[str, Any]], Score]
# Scorers that read more of the result than its text: (output, row, params, result), the
# result with ``tool_calls`` (name + arguments, in order) and ``parsed`` / ``has_parsed``.
ResultFn = Callable[[str, dict[str, Any], dict[str, Any], dict[str, Any]], Score]


@dataclass(frozen=True)
class Scorer:
    name: str
    type: str
    fn: ScoreFn | None  # None for the judge, which needs model calls
    config: dict[str, Any]
    result_fn: ResultFn | None = None

    def __call__(self, output: str, row: dict[str, Any], params: dict[str, Any],
                 result: dict[str, Any] | None = None) -> Score:
        assert self.fn is not None
        try:
            if self.result_fn is not None:
                return self.result_fn(output, row, params, result or {})
            return self.fn(output, row, params)
        except Exception as exc:  # a scorer's failure is recorded, never a crash
            try:
                said = f"{type(exc).__name__}: {exc}"
            except Exception:  # noqa: BLE001 - its own message failed: say what we can
                said = f"{type(exc).__name__} (its message could not be made)"
            return Score(None, None, {"error": said})


def _norm(text: str, cfg: dict[str, Any]) -> str:
    text = text.strip() if cfg.get("strip", True) else text
    return text if cfg.get("case_sensitive") else text.casefold()


def _expected(row: dict[str, Any], cfg: dict[str, Any], where: str) -> list[str]:
    key = cfg.get("field") or "expected"
    if key not in row:
        raise KeyError(f"dataset row has no '{key}' field")
    value = row[key]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def build_scorer(name: str, cfg: dict[str, Any], where: str) -> Scorer:
    kind = cfg.get("type")
    if kind not in SCORER_TYPES:
        raise UserError(f"{where}: scorers.{name}.type: '{kind}' is not a scorer; use one of "
                        f"{', '.join(SCORER_TYPES)}")

    if kind in ("exact", "contains"):
        def match(output: str, row: dict[str, Any], params: dict[str, Any]) -> Score:
            got = _norm(output, cfg)
            wanted = [_norm(e, cfg) for e in _expected(row, cfg, where)]
            ok = any((got == w) if kind == "exact" else (w in got) for w in wanted)
            return Score(1.0 if ok else 0.0, ok, {"expected": wanted})
        return Scorer(name, kind, match, cfg)

    if kind == "regex":
        try:
            pattern = re.compile(cfg.get("pattern") or "", 0 if cfg.get("case_sensitive")
                                 else re.IGNORECASE)
        except re.error as exc:
            raise UserError(f"{where}: scorers.{name}.pattern: {exc}; fix the regex") from None
        if not cfg.get("pattern"):
            raise UserError(f"{where}: scorers.{name}.pattern is required for a regex scorer")

        def rx(output: str, row: dict[str, Any], params: dict[str, Any]) -> Score:
            m = pattern.search(output)
            return Score(1.0 if m else 0.0, bool(m), {"match": m.group(0) if m else None})
        return Scorer(name, kind, rx, cfg)

    if kind == "json":
        def valid_json(output: str, row: dict[str, Any], params: dict[str, Any],
                       result: dict[str, Any] | None = None) -> Score:
            if result and result.get("has_parsed"):  # a structured output, parsed when stored
                return Score(1.0, True, {"parsed": "stored"})
            try:
                json.loads(_strip_fence(output))
            except ValueError as exc:
                return Score(0.0, False, {"error": str(exc)})
            return Score(1.0, True, {})
        return Scorer(name, kind, valid_json, cfg, valid_json)

    if kind == "tool_call":
        check = tool_call_scorer(name, cfg, where)

        def called(output: str, row: dict[str, Any], params: dict[str, Any],
                   result: dict[str, Any] | None = None) -> Score:
            return Score(*check(output, row, params, result or {}))
        return Scorer(name, kind, called, cfg, called)

    if kind == "json_schema":
        import jsonschema

        schema = cfg.get("schema")
        if not isinstance(schema, dict):
            raise UserError(f"{where}: scorers.{name}.schema must be a JSON schema mapping")
        try:
            validator = jsonschema.Draft202012Validator(schema)
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise UserError(f"{where}: scorers.{name}.schema is not a valid JSON schema: "
                            f"{exc.message}") from None

        def by_schema(output: str, row: dict[str, Any], params: dict[str, Any],
                      result: dict[str, Any] | None = None) -> Score:
            if result and result.get("has_parsed"):
                data = result["parsed"]
            else:
                try:
                    data = json.loads(_strip_fence(output))
                except ValueError as exc:
                    return Score(0.0, False, {"error": f"not JSON: {exc}"})
            errors = [e.message for e in validator.iter_errors(data)]
            return Score(0.0 if errors else 1.0, not errors, {"errors": errors[:5]})
        return Scorer(name, kind, by_schema, cfg, by_schema)

    if kind == "python":
        ref = cfg.get("function") or ""
        module_name, _, attr = ref.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise UserError(f"{where}: scorers.{name}.function: cannot load '{ref}' ({exc}); "
                            "give module:function importable from the project") from None

        def python(output: str, row: dict[str, Any], params: dict[str, Any]) -> Score:
            result = fn(output, row, params)
            if isinstance(result, Score):
                return result
            if isinstance(result, bool):
                return Score(1.0 if result else 0.0, result, {})
            if isinstance(result, int | float):
                return Score(float(result), None, {})
            if isinstance(result, dict):
                value = result.get("value")
                return Score(float(value) if value is not None else None, result.get("passed"),
                             {k: v for k, v in result.items() if k not in ("value", "passed")})
            raise TypeError(f"{ref} returned {type(result).__name__}; return a bool, a "
                            "number or a dict with value/passed")
        return Scorer(name, kind, python, cfg)

    # judge: scored by model calls, see promptlab.scoring.judge
    if not cfg.get("model") or not cfg.get("template"):
        raise UserError(f"{where}: scorers.{name} (judge) needs 'model' (a model alias from "
                        "experiments/models) and 'template' (a file in templates/)")
    return Scorer(name, kind, None, cfg)


def _strip_fence(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    return t


_VERDICT = re.compile(r"\b(PASS|FAIL)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?:score|rating)\s*[:=]?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_judgement(text: str, threshold: float | None = None) -> Score:
    """A judge's reply: 'PASS'/'FAIL' and/or 'score: N' (the first of each)."""
    verdict = _VERDICT.search(text)
    number = _NUMBER.search(text)
    value = float(number.group(1)) if number else None
    passed: bool | None = None
    if verdict:
        passed = verdict.group(1).upper() == "PASS"
        if value is None:
            value = 1.0 if passed else 0.0
    elif value is not None and threshold is not None:
        passed = value >= threshold
    detail: dict[str, Any] = {"judge_output": text[:2000]}
    if value is None and passed is None:
        detail["error"] = "no PASS/FAIL or 'score: N' in the judge's reply"
    return Score(value, passed, detail)
