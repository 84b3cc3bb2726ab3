"""Anthropic Messages: request bodies, replies, streams, failures."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from promptlab.errors import ProviderError
from promptlab.providers import ProviderRequest
from promptlab.providers.anthropic import AnthropicProvider
from promptlab.spec import ModelSpec
from promptlab.testing.mock_wire import answer, stream_frames

MODEL = ModelSpec("an", "anthropic", "claude-3-5-haiku-latest", None,
                  api_key_env="ANTHROPIC_API_KEY")
MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"}]
P = AnthropicProvider()


def body_of(messages: list[dict[str, str]], params: dict[str, Any] | None = None,
            model: ModelSpec = MODEL) -> dict[str, Any]:
    http = P.build_request(model, ProviderRequest(model.model, messages, params or {}), None)
    parsed: dict[str, Any] = json.loads(http.body)
    return parsed


def reply(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def message(content: Any, **more: Any) -> bytes:
    return reply(type="message", role="assistant", content=content, **more)


# -- requests ----------------------------------------------------------------------------


def test_request_posts_to_messages_with_the_system_prompt_as_a_top_level_field() -> None:
    http = P.build_request(MODEL, ProviderRequest("claude-3-5-haiku-latest", MESSAGES, {}),
                           None)
    assert (http.method, http.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert json.loads(http.body) == {"model": "claude-3-5-haiku-latest", "system": "Be brief.",
                                     "messages": MESSAGES[1:], "max_tokens": 1024}


def test_several_system_messages_are_joined_with_blank_lines() -> None:
    body = body_of([{"role": "system", "content": "A."}, {"role": "user", "content": "q"},
                    {"role": "system", "content": "B."}])
    assert body["system"] == "A.\n\nB."
    assert body["messages"] == [{"role": "user", "content": "q"}]


def test_no_system_message_sends_no_system_field() -> None:
    body = body_of([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "q2"}])
    assert "system" not in body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_max_tokens_defaults_to_1024_because_the_api_requires_it() -> None:
    assert body_of(MESSAGES)["max_tokens"] == 1024


def test_max_tokens_from_params_wins() -> None:
    assert body_of(MESSAGES, {"max_tokens": 5})["max_tokens"] == 5


def test_null_max_tokens_gets_the_default_instead_of_a_400() -> None:
    assert body_of(MESSAGES, {"max_tokens": None})["max_tokens"] == 1024


def test_params_are_passed_through() -> None:
    params = {"temperature": 0.0, "top_k": 5, "stop_sequences": ["\n\n"]}
    body = body_of(MESSAGES, params)
    assert {k: body[k] for k in params} == params


def test_api_key_goes_in_x_api_key_marked_secret_with_the_api_version() -> None:
    http = P.build_request(MODEL, ProviderRequest("c", MESSAGES, {}), "sk-ant-1")
    assert http.headers["x-api-key"] == "sk-ant-1"
    assert http.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in http.headers
    assert http.secret_headers == frozenset({"x-api-key"})


def test_no_api_key_sends_no_x_api_key() -> None:
    http = P.build_request(MODEL, ProviderRequest("c", MESSAGES, {}), None)
    assert "x-api-key" not in http.headers and http.secret_headers == frozenset()


def test_a_configured_api_version_replaces_the_default_whatever_its_case() -> None:
    model = replace(MODEL, headers=(("Anthropic-Version", "2024-01-01"),
                                    ("X-Proxy-Token", "t")),
                    secret_headers=("X-Proxy-Token",))
    http = P.build_request(model, ProviderRequest("c", MESSAGES, {}), "k")
    versions = [v for k, v in http.headers.items() if k.lower() == "anthropic-version"]
    assert versions == ["2024-01-01"]
    assert http.secret_headers == frozenset({"x-proxy-token", "x-api-key"})


def test_base_url_is_used_without_its_trailing_slash() -> None:
    model = replace(MODEL, base_url="http://127.0.0.1:9/v1/")
    assert P.build_request(model, ProviderRequest("c", MESSAGES, {}), None).url == \
        "http://127.0.0.1:9/v1/messages"


def test_streaming_asks_for_an_event_stream() -> None:
    model = replace(MODEL, stream=True)
    http = P.build_request(model, ProviderRequest("c", MESSAGES, {}), None)
    assert json.loads(http.body)["stream"] is True
    assert http.headers["accept"] == "text/event-stream"


# -- replies -----------------------------------------------------------------------------


def test_reply_fields_are_read() -> None:
    r = P.parse_response(MODEL, 200, message(
        [{"type": "text", "text": "Paris."}], model="claude-3-5-haiku-20241022",
        stop_reason="end_turn", usage={"input_tokens": 12, "output_tokens": 3}))
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model,
            r.fingerprint) == ("Paris.", "end_turn", 12, 3, "claude-3-5-haiku-20241022", None)


def test_text_blocks_are_joined_and_tool_use_blocks_left_out() -> None:
    r = P.parse_response(MODEL, 200, message([
        {"type": "text", "text": "Let me check. "},
        {"type": "tool_use", "id": "t1", "name": "lookup", "input": {}},
        {"type": "text", "text": "Done."}], stop_reason="tool_use"))
    assert (r.text, r.finish_reason) == ("Let me check. Done.", "tool_use")


def test_a_reply_of_only_tool_use_is_a_tool_call_with_empty_text() -> None:
    block = {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}
    r = P.parse_response(MODEL, 200, message([block]))
    assert r.text == ""
    assert [(c.name, c.arguments, c.id) for c in r.tool_calls] == [("lookup", {"q": "x"}, "t1")]


def test_empty_content_is_empty_text() -> None:
    assert P.parse_response(MODEL, 200, message([], stop_reason="end_turn")).text == ""


def test_missing_usage_leaves_token_counts_unknown() -> None:
    r = P.parse_response(MODEL, 200, message([{"type": "text", "text": "x"}]))
    assert (r.input_tokens, r.output_tokens, r.model, r.finish_reason) == (
        None, None, None, None)


def test_token_counts_are_made_ints_or_unknown() -> None:
    r = P.parse_response(MODEL, 200, message([{"type": "text", "text": "x"}], usage={
        "input_tokens": "12", "output_tokens": 2**40}))
    assert (r.input_tokens, r.output_tokens) == (12, None)


def test_odd_labels_are_bounded_strings() -> None:
    r = P.parse_response(MODEL, 200, message([{"type": "text", "text": "x"}],
                                             model=["m"] * 400, stop_reason=3))
    assert r.model is not None and len(r.model) == 500 and r.model.startswith('["m", ')
    assert r.finish_reason == "3"


def test_an_error_object_in_a_200_reply_is_reported() -> None:
    with pytest.raises(ProviderError, match="api_error.*Internal") as info:
        P.parse_response(MODEL, 200, reply(type="error", error={
            "type": "api_error", "message": "Internal server error"}))
    assert info.value.kind == "transient"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "is not JSON"), (b"<html>Bad Gateway</html>", "Bad Gateway"),
    (b'{"choices": [', "is not JSON"), (b'"text"', "expected a JSON object"),
    (b'{"model": "m"}', "no content"), (b"[" * 50_000, "nested too deeply"),
])
def test_nonsense_replies_are_one_line_provider_errors(body: bytes, message: str) -> None:
    with pytest.raises(ProviderError) as info:
        P.parse_response(MODEL, 200, body)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    assert info.value.kind == "transient"


# -- streams -----------------------------------------------------------------------------


def feed_frames(frames: list[bytes]) -> tuple[list[str], Any]:
    parser = P.stream_parser()
    deltas = []
    for frame in frames:
        for line in frame.decode().splitlines():
            if line.startswith("data:"):
                deltas.append(parser.feed(line[5:].strip()))
    return deltas, parser.result()


@pytest.mark.parametrize("max_tokens", [3, 200])
def test_a_streamed_reply_assembles_the_same_response_as_the_plain_one(max_tokens: int) -> None:
    params = {"max_tokens": max_tokens}
    plain = P.parse_response(MODEL, 200, json.dumps(answer("anthropic", body_of(
        MESSAGES, params))).encode())
    deltas, streamed = feed_frames(stream_frames("anthropic", body_of(
        MESSAGES, params, replace(MODEL, stream=True))))
    assert streamed == plain
    assert "".join(deltas) == plain.text and plain.text


def events(*items: dict[str, Any]) -> Any:
    parser = P.stream_parser()
    for item in items:
        parser.feed(json.dumps(item))
    return parser.result()


def test_stream_values_are_normalised() -> None:
    r = events({"type": "message_start", "message": {"model": "m" * 600, "usage": {
                    "input_tokens": "7", "output_tokens": 1}}},
               {"type": "content_block_delta", "delta": {"type": "text_delta",
                                                         "text": "a\ud800"}},
               {"type": "message_delta", "delta": {"stop_reason": {"x": 1}},
                "usage": {"output_tokens": 4.0}},
               {"type": "message_stop"})
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model) == (
        "a\ufffd", '{"x": 1}', 7, 4, "m" * 488 + "…[600 chars]")


def test_stream_garbage_usage_does_not_replace_a_good_count() -> None:
    r = events({"type": "message_start", "message": {"usage": {"input_tokens": 7}}},
               {"type": "message_delta", "usage": {"output_tokens": 4, "input_tokens": "x"}},
               {"type": "message_delta", "usage": {"output_tokens": -1}},
               {"type": "message_stop"})
    assert (r.input_tokens, r.output_tokens) == (7, 4)


def test_stream_ignores_events_it_does_not_know() -> None:
    r = events({"type": "ping"}, {"type": "content_block_start", "index": 0},
               {"type": "content_block_delta", "delta": {"type": "input_json_delta",
                                                         "partial_json": "{"}},
               {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "ok"}},
               {"type": "message_stop"})
    assert r.text == "ok"


@pytest.mark.parametrize(("error", "kind"), [
    ({"type": "overloaded_error", "message": "Overloaded"}, "rate_limit"),
    ({"type": "rate_limit_error", "message": "slow down"}, "rate_limit"),
    ({"type": "api_error", "message": "boom\nsecond line"}, "transient"),
    ("just a string", "transient"), (None, "transient"),
])
def test_a_stream_error_event_is_a_provider_error_of_the_right_kind(error: Any,
                                                                    kind: str) -> None:
    with pytest.raises(ProviderError, match="stream error") as info:
        P.stream_parser().feed(json.dumps({"type": "error", "error": error}))
    assert info.value.kind == kind
    assert len(str(info.value).splitlines()) == 1


def test_stream_that_ends_before_message_stop_is_transient() -> None:
    parser = P.stream_parser()
    parser.feed(json.dumps({"type": "content_block_delta",
                            "delta": {"type": "text_delta", "text": "hi"}}))
    with pytest.raises(ProviderError, match="message_stop") as info:
        parser.result()
    assert info.value.kind == "transient"


@pytest.mark.parametrize(("data", "message"), [
    ("not json", "is not JSON"), ("[1]", "expected a JSON object"), ("null", "expected"),
    ("[" * 50_000, "nested too deeply"),
])
def test_nonsense_stream_events_are_one_line_provider_errors(data: str, message: str) -> None:
    with pytest.raises(ProviderError) as info:
        P.stream_parser().feed(data)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1


# -- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "kind"), [
    (429, b'{"type": "error", "error": {"type": "rate_limit_error"}}', "rate_limit"),
    (529, b'{"type": "error", "error": {"type": "overloaded_error"}}', "rate_limit"),
    (529, b"", "rate_limit"),
    (500, b'{"type": "error", "error": {"type": "overloaded_error"}}', "rate_limit"),
    (401, b'{"type": "error", "error": {"type": "authentication_error"}}', "auth"),
    (403, b'{"type": "error", "error": {"type": "permission_error"}}', "auth"),
    (500, b'{"type": "error", "error": {"type": "api_error"}}', "transient"),
    (502, b"<html>", "transient"), (503, b"", "transient"), (408, b"", "transient"),
    (400, b'{"type": "error", "error": {"type": "invalid_request_error"}}', "fatal"),
    (404, b"", "fatal"), (413, b"", "fatal"),
])
def test_failed_statuses_are_classified(status: int, body: bytes, kind: str) -> None:
    assert P.classify(MODEL, status, body) == kind
