"""The OpenAI Responses API: request building, parsing, streaming, and the mock server
speaking it well enough for the official SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from requests_helpers import models, run

from promptlab.errors import ProviderError
from promptlab.providers import ProviderRequest, get_provider
from promptlab.providers.openai import OpenAIStream
from promptlab.providers.responses import parse_responses
from promptlab.spec import ModelSpec
from promptlab.testing import MockServer
from promptlab.testing.mock_responses import response_answer, response_frames

MODEL = ModelSpec(alias="rs", provider="openai", model="gpt-5-mini",
                  base_url="http://x/v1", endpoint="responses")


def build(request: ProviderRequest, model: ModelSpec = MODEL) -> dict:
    http = get_provider("openai").build_request(model, request, "sk")
    assert http.url == "http://x/v1/responses"
    return json.loads(http.body)


def test_request_has_instructions_input_items_and_max_output_tokens() -> None:
    body = build(ProviderRequest("gpt-5-mini", [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Capital of France?"}],
        {"max_tokens": 20, "reasoning": {"effort": "low", "summary": "auto"}}))
    assert body == {"model": "gpt-5-mini", "instructions": "Be terse.",
                    "input": [{"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello"},
                              {"role": "user", "content": "Capital of France?"}],
                    "max_output_tokens": 20, "reasoning": {"effort": "low", "summary": "auto"}}


def test_request_translates_tools_and_structured_output() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    body = build(ProviderRequest(
        "m", [{"role": "user", "content": "q"}], {},
        tools=({"name": "f", "description": "d", "parameters": schema},), tool_choice="f",
        response_format={"type": "json_schema",
                         "json_schema": {"name": "a", "schema": schema, "strict": True}}))
    assert body["tools"] == [{"type": "function", "name": "f", "description": "d",
                              "parameters": schema}]
    assert body["tool_choice"] == {"type": "function", "name": "f"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "a", "schema": schema,
                                       "strict": True}}


def test_reply_gives_text_calls_reasoning_and_usage_detail() -> None:
    reply = {"id": "r", "object": "response", "status": "completed", "model": "gpt-5-mini-2025",
             "output": [
                 {"type": "reasoning", "id": "rs", "summary": [
                     {"type": "summary_text", "text": "thinking"}]},
                 {"type": "message", "role": "assistant", "content": [
                     {"type": "output_text", "text": "Paris", "annotations": []}]},
                 {"type": "function_call", "call_id": "c1", "name": "f",
                  "arguments": "{\"x\": 1}"}],
             "usage": {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 32},
                       "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 12}}}
    r = parse_responses(json.dumps(reply).encode())
    assert (r.text, r.finish_reason, r.model) == ("Paris", "tool_calls", "gpt-5-mini-2025")
    assert (r.input_tokens, r.output_tokens, r.reasoning_tokens, r.cached_input_tokens) == (
        50, 20, 12, 32)
    assert [(c.name, c.arguments, c.id) for c in r.tool_calls] == [("f", {"x": 1}, "c1")]
    assert r.reasoning == "thinking"


def test_incomplete_reply_names_the_reason_and_failed_reply_is_an_error() -> None:
    r = parse_responses(json.dumps({"status": "incomplete", "output": [],
                                    "incomplete_details": {"reason": "max_output_tokens"}}))
    assert r.finish_reason == "max_output_tokens"
    with pytest.raises(ProviderError, match="server_error"):
        parse_responses(json.dumps({"status": "failed", "output": [],
                                    "error": {"code": "server_error"}}))


def test_stream_events_assemble_the_same_response_as_the_body() -> None:
    body = {"model": "m", "input": [{"role": "user", "content": "Capital of Peru?"}],
            "reasoning": {"effort": "low"}}
    stream = OpenAIStream()
    text = ""
    for frame in response_frames(body):
        data = frame.decode().split("data: ", 1)[1].strip()
        text += stream.feed(data)
    streamed = stream.result()
    whole = parse_responses(json.dumps(response_answer(body)))
    assert streamed == whole
    assert text == whole.text and text.startswith("Capital of Peru?")


def test_error_event_mid_stream_is_a_transient_error() -> None:
    stream = OpenAIStream()
    stream.feed(json.dumps({"type": "response.created", "response": {}}))
    with pytest.raises(ProviderError) as err:
        stream.feed(json.dumps({"type": "error", "code": "server_error", "message": "boom"}))
    assert err.value.kind == "transient"
    cut = OpenAIStream()
    cut.feed(json.dumps({"type": "response.output_text.delta", "delta": "Par"}))
    with pytest.raises(ProviderError, match="before response.completed"):
        cut.result()


def test_official_sdk_accepts_the_mock(mock_server: MockServer,
                                       request: pytest.FixtureRequest) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=mock_server.url + "/v1", api_key="sk-test")
    request.addfinalizer(client.close)  # its pooled sockets: no ResourceWarning later
    resp = client.responses.create(model="mock-small", input="Capital of Spain?",
                                   instructions="Be brief.", reasoning={"effort": "low"})
    assert resp.output_text.startswith("Capital of Spain? ->")
    assert resp.usage is not None and resp.usage.output_tokens_details.reasoning_tokens == 3
    tools = [{"type": "function", "name": "get_weather", "description": "w",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    called = client.responses.create(model="mock-small", input="Weather in Oslo", tools=tools)
    call = called.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    events = list(client.responses.create(model="mock-small", input="Hi there", stream=True))
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text


@pytest.mark.parametrize("stream", [False, True])
def test_run_on_the_responses_endpoint_records_text_usage_and_ttft(
        project: Path, mock_server: MockServer, stream: bool) -> None:
    models(project, mock_server.url + "/v1", rs={"stream": stream})
    result, store = run(project, "models=[rs]", "prompts=[plain]", "grid.params={}")
    with store:
        assert result.ok
        rows = list(store.export_rows(result.run_id))
        assert {r["request"]["url"].rsplit("/", 1)[1] for r in rows} == {"responses"}
        r = rows[0]["result"]
        assert r["output"].startswith("What is the capital of")
        assert r["input_tokens"] and r["output_tokens"] and r["finish_reason"] == "stop"
        assert (r["ttft_ms"] is not None) == stream


def test_stream_breaking_mid_way_is_retried_then_recorded(
        project: Path, mock_server: MockServer) -> None:
    models(project, mock_server.url + "/v1", rs={"stream": True})
    (project / "templates/ask.j2").write_text("Capital of {{ country }}? MOCK_FAULT=midstream")
    result, store = run(project, "models=[rs]", "prompts=[plain]", "grid.params={}")
    with store:
        assert result.counts["errors"] == result.counts["planned"]
        errors = {r["result"]["error"] for r in store.export_rows(result.run_id)}
        assert all("stream error" in e for e in errors), errors
