"""OpenAI Chat Completions and Completions: request bodies, replies, streams, failures."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from promptlab.errors import ProviderError
from promptlab.providers import ProviderRequest
from promptlab.providers.openai import OpenAIProvider
from promptlab.spec import ModelSpec
from promptlab.testing.mock_wire import answer, stream_frames

CHAT = ModelSpec("oa", "openai", "gpt-4o-mini", "http://127.0.0.1:9/v1/",
                 api_key_env="OPENAI_API_KEY")
COMPLETIONS = ModelSpec("oc", "openai", "gpt-3.5-turbo-instruct", "http://127.0.0.1:9/v1",
                        endpoint="completions")
MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"}]
P = OpenAIProvider()


def body_of(model: ModelSpec, params: dict[str, Any] | None = None,
            api_key: str | None = "sk-1") -> dict[str, Any]:
    http = P.build_request(model, ProviderRequest(model.model, MESSAGES, params or {}), api_key)
    parsed: dict[str, Any] = json.loads(http.body)
    return parsed


def reply(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def chat_reply(content: Any, **more: Any) -> bytes:
    return reply(choices=[{"index": 0, "message": {"role": "assistant", "content": content},
                           "finish_reason": "stop"}], **more)


# -- requests ----------------------------------------------------------------------------


def test_chat_request_posts_messages_to_chat_completions() -> None:
    http = P.build_request(CHAT, ProviderRequest("gpt-4o-mini", MESSAGES, {}), None)
    assert http.method == "POST"
    assert http.url == "http://127.0.0.1:9/v1/chat/completions"
    assert json.loads(http.body) == {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert http.headers["content-type"] == "application/json"
    assert http.headers["accept"] == "application/json"


def test_completions_request_joins_messages_into_one_prompt() -> None:
    http = P.build_request(COMPLETIONS, ProviderRequest("gpt-3.5-turbo-instruct", MESSAGES,
                                                        {}), None)
    assert http.url == "http://127.0.0.1:9/v1/completions"
    assert json.loads(http.body) == {"model": "gpt-3.5-turbo-instruct",
                                     "prompt": "Be brief.\nCapital of France?"}


def test_params_are_passed_through_unchanged() -> None:
    params = {"temperature": 0.2, "max_tokens": 16, "stop": ["\n"], "seed": 7,
              "response_format": {"type": "json_object"}}
    assert body_of(CHAT, params) == {"model": "gpt-4o-mini", "messages": MESSAGES, **params}


def test_default_base_url_is_openai() -> None:
    model = ModelSpec("oa", "openai", "gpt-4o-mini", None)
    http = P.build_request(model, ProviderRequest("gpt-4o-mini", MESSAGES, {}), None)
    assert http.url == "https://api.openai.com/v1/chat/completions"


def test_api_key_goes_in_a_bearer_authorization_header_marked_secret() -> None:
    http = P.build_request(CHAT, ProviderRequest("gpt-4o-mini", MESSAGES, {}), "sk-1")
    assert http.headers["authorization"] == "Bearer sk-1"
    assert http.secret_headers == frozenset({"authorization"})


def test_no_api_key_sends_no_authorization_header() -> None:
    http = P.build_request(CHAT, ProviderRequest("gpt-4o-mini", MESSAGES, {}), None)
    assert "authorization" not in http.headers
    assert http.secret_headers == frozenset()


def test_configured_headers_are_sent_and_secret_headers_marked_in_lower_case() -> None:
    model = ModelSpec("oa", "openai", "m", None, headers=(("X-Org", "o"), ("X-Token", "t")),
                      secret_headers=("X-Token",))
    http = P.build_request(model, ProviderRequest("m", MESSAGES, {}), "sk-1")
    assert http.headers["x-org"] == "o" and http.headers["x-token"] == "t"
    assert http.secret_headers == frozenset({"x-token", "authorization"})


def test_a_configured_header_replaces_the_default_whatever_its_case() -> None:
    model = ModelSpec("oa", "openai", "m", None,
                      headers=(("Content-Type", "application/json; charset=utf-8"),))
    http = P.build_request(model, ProviderRequest("m", MESSAGES, {}), None)
    assert [k for k in http.headers if k.lower() == "content-type"] == ["content-type"]
    assert http.headers["content-type"] == "application/json; charset=utf-8"


def test_streaming_asks_for_an_event_stream_with_usage() -> None:
    model = ModelSpec("oa", "openai", "m", None, stream=True)
    http = P.build_request(model, ProviderRequest("m", MESSAGES, {}), None)
    body = json.loads(http.body)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert http.headers["accept"] == "text/event-stream"


def test_a_message_with_a_lone_surrogate_still_builds_a_utf8_body() -> None:
    messages = [{"role": "user", "content": "broken \ud800 escape"}]
    http = P.build_request(CHAT, ProviderRequest("m", messages, {}), None)
    assert json.loads(http.body.decode("utf-8"))["messages"] == messages


# -- replies -----------------------------------------------------------------------------


def test_chat_reply_fields_are_read() -> None:
    r = P.parse_response(CHAT, 200, chat_reply(
        "Paris.", model="gpt-4o-mini-2024-07-18", system_fingerprint="fp_1",
        usage={"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}))
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model,
            r.fingerprint) == ("Paris.", "stop", 12, 2, "gpt-4o-mini-2024-07-18", "fp_1")


def test_completions_reply_text_is_read() -> None:
    r = P.parse_response(COMPLETIONS, 200, reply(
        choices=[{"index": 0, "text": " Paris.", "finish_reason": "length"}],
        usage={"prompt_tokens": 5, "completion_tokens": 3}))
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens) == (
        " Paris.", "length", 5, 3)


def test_content_parts_are_joined_into_text() -> None:
    r = P.parse_response(CHAT, 200, chat_reply([{"type": "text", "text": "Par"},
                                                {"type": "text", "text": "is."}]))
    assert r.text == "Paris."


def test_non_text_content_parts_are_left_out_of_the_text() -> None:
    r = P.parse_response(CHAT, 200, chat_reply([
        {"type": "text", "text": "see "}, {"type": "image_url", "image_url": {"url": "u"}},
        {"type": "text", "text": "above"}]))
    assert r.text == "see above"


def test_object_content_is_kept_as_json_text() -> None:
    assert P.parse_response(CHAT, 200, chat_reply({"city": "Paris"})).text == \
        '{"city": "Paris"}'


def test_null_content_is_empty_text() -> None:
    r = P.parse_response(CHAT, 200, reply(choices=[{"message": {
        "role": "assistant", "content": None, "tool_calls": []}, "finish_reason": "tool_calls"}]))
    assert (r.text, r.finish_reason) == ("", "tool_calls")


def test_missing_usage_leaves_token_counts_unknown() -> None:
    r = P.parse_response(CHAT, 200, chat_reply("ok"))
    assert (r.input_tokens, r.output_tokens, r.model, r.fingerprint) == (None, None, None, None)


def test_null_usage_leaves_token_counts_unknown() -> None:
    r = P.parse_response(CHAT, 200, chat_reply("ok", usage=None))
    assert (r.input_tokens, r.output_tokens) == (None, None)


def test_numeric_string_token_counts_become_ints() -> None:
    r = P.parse_response(CHAT, 200, chat_reply(
        "ok", usage={"prompt_tokens": "5", "completion_tokens": 2.0}))
    assert (r.input_tokens, r.output_tokens) == (5, 2)
    assert type(r.input_tokens) is int and type(r.output_tokens) is int


@pytest.mark.parametrize("count", [True, -3, 2**31, 10**30, 1.5, "lots", [1], {"n": 1}, None])
def test_token_counts_that_do_not_fit_an_integer_column_are_unknown(count: Any) -> None:
    r = P.parse_response(CHAT, 200, chat_reply(
        "ok", usage={"prompt_tokens": count, "completion_tokens": count}))
    assert (r.input_tokens, r.output_tokens) == (None, None)


def test_huge_float_token_counts_are_unknown() -> None:
    r = P.parse_response(CHAT, 200, b'{"choices": [{"message": {"content": "ok"}}], '
                                    b'"usage": {"prompt_tokens": 1e308, '
                                    b'"completion_tokens": NaN}}')
    assert (r.input_tokens, r.output_tokens) == (None, None)


def test_model_finish_reason_and_fingerprint_are_bounded_strings() -> None:
    r = P.parse_response(CHAT, 200, reply(
        choices=[{"message": {"content": "ok"}, "finish_reason": {"why": "x" * 100}}],
        model="m" * 5000, system_fingerprint=12345))
    assert r.model == "m" * 487 + "…[5000 chars]"  # cut with a visible marker
    assert r.finish_reason is not None and len(r.finish_reason) == 50
    assert r.finish_reason.startswith('{"why": "xxx')
    assert r.fingerprint == "12345"


def test_empty_choices_is_a_transient_provider_error() -> None:
    with pytest.raises(ProviderError, match="no choices") as info:
        P.parse_response(CHAT, 200, reply(choices=[], model="m"))
    assert info.value.kind == "transient"


def test_an_error_object_in_a_200_reply_is_reported() -> None:
    with pytest.raises(ProviderError, match="server_error.*try again"):
        P.parse_response(CHAT, 200, reply(error={"type": "server_error",
                                                 "message": "try again"}))


@pytest.mark.parametrize(("body", "message"), [
    (b"", "is not JSON"), (b"<html>Bad Gateway</html>", "Bad Gateway"),
    (b"[1, 2]", "expected a JSON object"), (b"null", "expected a JSON object"),
    (b'{"choices": "lots"}', "no choices"), (b'{"choices": [5]}', "choice 0"),
    (b'{"choices": [{"message": "hi"}]}', "neither"), (b'{"choices": [{}]}', "neither"),
    (b"[" * 50_000, "nested too deeply"),
])
def test_nonsense_replies_are_one_line_provider_errors(body: bytes, message: str) -> None:
    with pytest.raises(ProviderError) as info:
        P.parse_response(CHAT, 200, body)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    assert info.value.kind == "transient"


# -- n samples ---------------------------------------------------------------------------


def test_parse_choices_returns_every_choice_in_index_order_with_usage_on_the_first() -> None:
    body = reply(model="m", system_fingerprint="fp", usage={"prompt_tokens": 4,
                                                            "completion_tokens": 6},
                 choices=[{"index": 2, "message": {"content": "c"}, "finish_reason": "stop"},
                          {"index": 0, "message": {"content": "a"}, "finish_reason": "length"},
                          {"index": 1, "message": {"content": "b"}, "finish_reason": "stop"}])
    rs = P.parse_choices(CHAT, 200, body)
    assert [(r.text, r.finish_reason) for r in rs] == [("a", "length"), ("b", "stop"),
                                                       ("c", "stop")]
    assert [(r.input_tokens, r.output_tokens) for r in rs] == [(4, 6), (None, None),
                                                               (None, None)]
    assert {(r.model, r.fingerprint) for r in rs} == {("m", "fp")}
    assert P.parse_response(CHAT, 200, body) == rs[0]


def test_parse_choices_normalises_every_choice() -> None:
    rs = P.parse_choices(CHAT, 200, reply(choices=[
        {"index": 0, "message": {"content": [{"type": "text", "text": "a"}]}},
        {"index": 1, "message": {"content": {"k": 1}}, "finish_reason": 7}]))
    assert [(r.text, r.finish_reason) for r in rs] == [("a", None), ('{"k": 1}', "7")]


def test_parse_choices_keeps_server_order_when_indexes_are_missing_or_odd() -> None:
    rs = P.parse_choices(CHAT, 200, reply(choices=[
        {"message": {"content": "a"}}, {"index": "x", "message": {"content": "b"}},
        {"index": True, "message": {"content": "c"}}]))
    assert [r.text for r in rs] == ["a", "b", "c"]


# -- streams -----------------------------------------------------------------------------


def feed_frames(frames: list[bytes]) -> tuple[list[str], Any]:
    parser = P.stream_parser()
    deltas = []
    for frame in frames:
        for line in frame.decode().splitlines():
            if line.startswith("data:"):
                deltas.append(parser.feed(line[5:].strip()))
    return deltas, parser.result()


@pytest.mark.parametrize(("model", "flavour"), [(CHAT, "chat"), (COMPLETIONS, "completions")])
@pytest.mark.parametrize("max_tokens", [3, 200])
def test_a_streamed_reply_assembles_the_same_response_as_the_plain_one(
        model: ModelSpec, flavour: str, max_tokens: int) -> None:
    params = {"max_tokens": max_tokens, "temperature": 0}
    plain = P.parse_response(model, 200, json.dumps(answer(flavour, body_of(model, params))
                                                    ).encode())
    deltas, streamed = feed_frames(stream_frames(
        flavour, body_of(replace(model, stream=True), params)))
    assert streamed == plain
    assert "".join(deltas) == plain.text and plain.text


def test_stream_content_parts_are_joined() -> None:
    parser = P.stream_parser()
    assert parser.feed(json.dumps({"choices": [{"delta": {"content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]})) == "ab"
    parser.feed("[DONE]")
    assert parser.result().text == "ab"


def test_stream_usage_and_labels_are_normalised() -> None:
    parser = P.stream_parser()
    parser.feed(json.dumps({"model": "m" * 900, "system_fingerprint": 5, "choices": [
        {"delta": {"content": "x"}, "finish_reason": "stop"}]}))
    parser.feed(json.dumps({"choices": [], "usage": {"prompt_tokens": "9",
                                                     "completion_tokens": -1}}))
    parser.feed("[DONE]")
    r = parser.result()
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model,
            r.fingerprint) == ("x", "stop", 9, None, "m" * 488 + "…[900 chars]", "5")


def test_stream_usage_chunk_with_null_choices_is_accepted() -> None:
    parser = P.stream_parser()
    parser.feed('{"choices": [{"delta": {"content": "hi"}}]}')
    parser.feed('{"choices": null, "usage": {"prompt_tokens": 1, "completion_tokens": 1}}')
    parser.feed("[DONE]")
    assert (parser.result().text, parser.result().output_tokens) == ("hi", 1)


def test_stream_that_ends_before_done_is_transient() -> None:
    parser = P.stream_parser()
    parser.feed('{"choices": [{"delta": {"content": "hi"}}]}')
    with pytest.raises(ProviderError, match=r"\[DONE\]") as info:
        parser.result()
    assert info.value.kind == "transient"


@pytest.mark.parametrize(("data", "message"), [
    ("not json", "is not JSON"), ("[1]", "expected a JSON object"), ("7", "expected"),
    ('{"error": {"message": "boom\\nsecond line"}}', "stream error"),
    ('{"choices": 5}', "choices"), ('{"choices": ["x"]}', "choice"),
    ("[" * 50_000, "nested too deeply"),
])
def test_nonsense_stream_chunks_are_one_line_provider_errors(data: str, message: str) -> None:
    with pytest.raises(ProviderError) as info:
        P.stream_parser().feed(data)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1


# -- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [
    (429, "rate_limit"), (401, "auth"), (403, "auth"), (408, "transient"), (500, "transient"),
    (502, "transient"), (503, "transient"), (529, "transient"), (400, "fatal"), (404, "fatal"),
    (422, "fatal"),
])
def test_failed_statuses_are_classified(status: int, kind: str) -> None:
    body = reply(error={"message": "x", "type": "invalid_request_error"})
    assert P.classify(CHAT, status, body) == kind
