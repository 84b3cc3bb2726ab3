"""Anthropic prompt caching: a message's cache_control reaches the Messages API where it
reads it (a block), the cache read and write counts land in the result and the report, and
OpenAI is sent no marker."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import prepared_for, run_with

from promptlab.errors import UserError
from promptlab.providers import ProviderRequest
from promptlab.providers.anthropic import AnthropicProvider
from promptlab.providers.openai import chat_messages
from promptlab.reports.aggregate import aggregate_runs
from promptlab.spec import ModelSpec

MARK = {"type": "ephemeral"}


def _body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    model = ModelSpec(alias="an", provider="anthropic", model="claude", base_url=None)
    request = ProviderRequest(model="claude", messages=messages, params={})
    http = AnthropicProvider().build_request(model, request, None)
    return json.loads(http.body)


def test_a_marked_message_becomes_a_marked_block() -> None:
    body = _body([
        {"role": "system", "content": "long rules", "cache_control": MARK},
        {"role": "user", "content": "a long document", "cache_control": {**MARK, "ttl": "1h"}},
        {"role": "user", "content": [{"type": "text", "text": "q"},
                                     {"type": "image", "url": "data:image/png;base64,AAAA"}],
         "cache_control": MARK},
        {"role": "user", "content": "the question"}])
    assert body["system"] == [{"type": "text", "text": "long rules", "cache_control": MARK}]
    first, parts, last = body["messages"]
    assert first == {"role": "user", "content": [
        {"type": "text", "text": "a long document", "cache_control": {**MARK, "ttl": "1h"}}]}
    assert parts["content"][0] == {"type": "text", "text": "q"}
    assert parts["content"][1]["source"]["type"] == "base64"
    assert parts["content"][1]["cache_control"] == MARK
    assert last == {"role": "user", "content": "the question"}


def test_without_a_marker_the_request_is_as_before() -> None:
    body = _body([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    assert body["system"] == "s" and body["messages"] == [{"role": "user", "content": "u"}]


def test_openai_is_sent_no_marker() -> None:
    assert chat_messages([{"role": "user", "content": "x", "cache_control": MARK}]) == [
        {"role": "user", "content": "x"}]


def _cached_prompt(project: Path, marker: str) -> None:
    (project / "experiments/prompts/cached.yaml").write_text(textwrap.dedent(f"""\
        # @package prompts.cached
        messages:
          - role: system
            content: "You answer questions about capitals."
            cache_control: {marker}
          - role: user
            template: ask.j2
        """))


@pytest.mark.parametrize("marker", ["{type: persistent}", "{type: ephemeral, ttl: 2d}",
                                    "ephemeral"])
def test_a_bad_marker_is_one_line_naming_the_key(project: Path, marker: str) -> None:
    _cached_prompt(project, marker)
    with pytest.raises(UserError) as err:
        prepared_for(project, "prompts=[cached]")
    message = str(err.value)
    assert "prompts.cached.messages[0].cache_control" in message and "ephemeral" in message
    assert "\n" not in message


def test_cache_reads_and_writes_land_in_the_result_and_the_report(project: Path) -> None:
    _cached_prompt(project, "{type: ephemeral}")
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if request.url.path.endswith("/messages"):
            first = sum("system" in b for b in seen) == 1
            return httpx.Response(200, json={
                "type": "message", "model": "m", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "Paris"}],
                "usage": {"input_tokens": 5, "output_tokens": 1,
                          "cache_creation_input_tokens": 2000 if first else 0,
                          "cache_read_input_tokens": 0 if first else 2000}})
        return httpx.Response(200, json={"model": "m", "choices": [
            {"message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                      "prompt_tokens_details": {"cached_tokens": 0}}})

    stats, store = run_with(project, handler, "prompts=[cached]", "run.concurrency=1")
    try:
        assert stats.errors == 0
        anthropic = [b for b in seen if "system" in b]
        openai = [b for b in seen if "system" not in b]
        assert anthropic and openai
        assert all(b["system"] == [{"type": "text", "cache_control": MARK,
                                    "text": "You answer questions about capitals."}]
                   for b in anthropic)
        assert not any("cache_control" in json.dumps(b) for b in openai)
        [an] = [g for g in aggregate_runs(store, ["r1"], ["model"]) if g.key == ("an",)]
        assert an.cache_write_tokens == 2000
        assert an.cached_input_tokens == 2000 * (len(anthropic) - 1)
        assert an.input_tokens == len(anthropic) * 5 + 2000 * len(anthropic)
    finally:
        store.close()
