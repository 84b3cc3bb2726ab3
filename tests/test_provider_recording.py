"""Odd replies reach the database through the real runner: stored as values, or as errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
from helpers import run_with

ONE_EACH = ("prompts=[plain]", "grid.params.temperature=[0]", "grid.params.top_p=[1]",
            "dataset.limit=1")


def raw(body: Any) -> httpx.Response:
    # json.dumps escapes the lone surrogate; httpx's own json= would refuse to encode it.
    return httpx.Response(200, content=json.dumps(body).encode(),
                          headers={"content-type": "application/json"})


def odd_server(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/messages"):
        return raw({"type": "message", "model": "claude-" + "x" * 900, "content": [
            {"type": "text", "text": "Ro"}, {"type": "tool_use", "id": "t", "name": "f",
                                             "input": {}},
            {"type": "text", "text": "me \ud800"}], "stop_reason": {"odd": True},
            "usage": {"input_tokens": "5", "output_tokens": 2.0}})
    return raw({"model": "gpt", "system_fingerprint": ["fp"], "choices": [
        {"message": {"role": "assistant", "content": [{"type": "text", "text": "Ro"},
                                                      {"type": "text", "text": "me"}]},
         "finish_reason": "stop"}], "usage": {"prompt_tokens": "5", "completion_tokens": 1e30}})


def results(project: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(project / "results.db") as conn:
        rows = conn.execute(
            "select t.model_alias, r.status, r.output, r.input_tokens, r.output_tokens, "
            "r.finish_reason, length(r.response_model), r.fingerprint, r.cost_usd, r.error "
            "from trials t join results r using (run_id, idx)").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_content_parts_string_counts_and_odd_labels_are_stored_as_plain_values(
        project: Path) -> None:
    stats, _ = run_with(project, odd_server, *ONE_EACH)
    assert (stats.ok, stats.errors) == (2, 0)
    assert results(project) == {
        "oa": ("ok", "Rome", 5, None, "stop", 3, '["fp"]', 0.0, None),
        "an": ("ok", "Rome \ufffd", 5, 2, '{"odd": true}', 500, None, 0.0, None),
    }


def test_a_reply_that_is_not_json_is_recorded_as_a_one_line_error(project: Path) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/messages"):
            return raw({"content": [{"type": "text", "text": "ok"}]})
        return httpx.Response(200, content=b"[" * 100_000)

    stats, _ = run_with(project, server, *ONE_EACH)
    assert (stats.ok, stats.errors) == (1, 1)
    stored = results(project)
    assert stored["an"][:2] == ("ok", "ok")
    status, error = stored["oa"][0], stored["oa"][-1]
    assert status == "error"
    assert error.startswith("OpenAI reply is nested too deeply to parse: ")
    assert "\n" not in error
