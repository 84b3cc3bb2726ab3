"""Helpers for the modern-request tests: a project on the mock server with one model per
wire format (chat, responses, anthropic) and an experiment run through the public API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import write

import promptlab
from promptlab.store import Store

WEATHER = [{"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string"}, "unit": {"type": "string",
                                                     "enum": ["celsius", "fahrenheit"]}},
                "required": ["city"]}}]


def models(root: Path, url: str, **extra: dict[str, Any]) -> None:
    """Models ch (chat), rs (responses) and an (anthropic) on the mock at `url`; `extra`
    adds keys to each (by alias)."""
    base = {"ch": {"provider": "openai", "model": "mock-small", "base_url": url},
            "rs": {"provider": "openai", "model": "mock-small", "base_url": url,
                   "endpoint": "responses"},
            "an": {"provider": "anthropic", "model": "mock-large", "base_url": url,
                   "params": {"max_tokens": 50}}}
    for alias, cfg in base.items():
        cfg.update(extra.get(alias, {}))
        write(root / f"experiments/models/{alias}.yaml",
              f"# @package models.{alias}\n" + json.dumps(cfg) + "\n")


def run(root: Path, *overrides: str) -> tuple[promptlab.RunResult, Store]:
    db = str(root / "results.db")
    result = promptlab.run(list(overrides), experiments=str(root / "experiments"), db=db)
    return result, Store.open(db)


def exported(store: Store, run_id: str) -> list[dict[str, Any]]:
    return list(store.export_rows(run_id))
