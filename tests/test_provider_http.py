"""The generic HTTP provider, with the documented Gemini config: requests, replies, failures."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from conftest import REPO
from omegaconf import OmegaConf

from promptlab.config.schema import HttpConfig
from promptlab.errors import ProviderError, UserError
from promptlab.providers import ProviderRequest
from promptlab.providers.http import HttpProvider, dig
from promptlab.spec import ModelSpec


def documented_http_config() -> dict[str, Any]:
    """experiments/models/gemini-flash.yaml's http block, as the config loader gives it."""
    yaml = OmegaConf.load(REPO / "experiments/models/gemini-flash.yaml")
    merged = OmegaConf.merge(OmegaConf.structured(HttpConfig), yaml["http"])
    config = OmegaConf.to_container(merged)
    assert isinstance(config, dict)
    return {str(k): v for k, v in config.items()}


GEMINI = ModelSpec("gem", "http", "gemini-2.0-flash", "https://generativelanguage.googleapis.com/",
                   api_key_env="GEMINI_API_KEY", http=documented_http_config())
MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of \"France\"?"}]
P = HttpProvider()


def with_http(**changes: Any) -> ModelSpec:
    assert GEMINI.http is not None
    return replace(GEMINI, http={**GEMINI.http, **changes})


def reply(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def gemini_reply(text: Any = "Paris.", **more: Any) -> bytes:
    fields = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                              "finishReason": "STOP"}],
              "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2},
              "modelVersion": "gemini-2.0-flash-001"}
    return reply(**{**fields, **more})


# -- requests ----------------------------------------------------------------------------


def test_the_body_template_renders_the_request() -> None:
    http = P.build_request(GEMINI, ProviderRequest("gemini-2.0-flash", MESSAGES,
                                                   {"max_tokens": 8}), None)
    assert http.method == "POST"
    assert http.url == ("https://generativelanguage.googleapis.com/v1beta/models/"
                        "gemini-2.0-flash:generateContent")
    assert json.loads(http.body) == {
        "contents": [{"role": "user", "parts": [{"text": "Capital of \"France\"?"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 1.0, "maxOutputTokens": 8}}


def test_every_template_variable_is_available() -> None:
    model = with_http(body='{"m": {{ model | tojson }}, "p": {{ prompt | tojson }}, '
                           '"s": {{ system | tojson }}, "u": {{ user | tojson }}, '
                           '"n": {{ messages | length }}, "t": {{ params.t | tojson }}}')
    http = P.build_request(model, ProviderRequest("x", MESSAGES, {"t": 0.5}), None)
    assert json.loads(http.body) == {"m": "x", "p": "Be brief.\nCapital of \"France\"?",
                                     "s": "Be brief.", "u": "Capital of \"France\"?", "n": 2,
                                     "t": 0.5}


def test_api_key_header_carries_the_key_and_is_secret() -> None:
    model = replace(with_http(api_key_header="X-Goog-Api-Key"),
                    headers=(("X-Trace", "1"),), secret_headers=("X-Trace",))
    http = P.build_request(model, ProviderRequest("gemini-2.0-flash", MESSAGES, {}), "k-1")
    assert http.headers["x-goog-api-key"] == "k-1"
    assert http.headers["x-trace"] == "1"
    assert http.secret_headers == frozenset({"x-goog-api-key", "x-trace"})


def test_no_api_key_sends_no_key_header() -> None:
    http = P.build_request(GEMINI, ProviderRequest("gemini-2.0-flash", MESSAGES, {}), None)
    assert "x-goog-api-key" not in http.headers and http.secret_headers == frozenset()


@pytest.mark.parametrize(("path", "url"), [
    ("/v1/{model}:go", "https://generativelanguage.googleapis.com/v1/gemini-2.0-flash:go?key=k"),
    ("/v1/go?alt=json", "https://generativelanguage.googleapis.com/v1/go?alt=json&key=k"),
])
def test_api_key_param_is_added_to_the_query(path: str, url: str) -> None:
    model = with_http(path=path, api_key_header=None, api_key_param="key")
    assert P.build_request(model, ProviderRequest("gemini-2.0-flash", MESSAGES, {}),
                           "k").url == url


def test_the_method_is_upper_cased() -> None:
    model = with_http(method="put")
    assert P.build_request(model, ProviderRequest("m", MESSAGES, {}), None).method == "PUT"


@pytest.mark.parametrize(("body", "message"), [
    ('{"a": {{ prompt | tojson }', "template syntax error"),
    ('{"a": {{ nothing | tojson }}}', "'nothing' is undefined"),
    ('{"a": {{ prompt }}}', "does not render to JSON"),
    ('{"a": {{ (1 / 0) | tojson }}}', "ZeroDivisionError"),
    ('{"a": {{ prompt.__class__ | tojson }}}', "unsafe"),
])
def test_body_template_mistakes_are_user_errors(body: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        P.build_request(with_http(body=body), ProviderRequest("m", MESSAGES, {}), None)


def test_streaming_is_refused_when_the_request_is_built() -> None:
    with pytest.raises(UserError, match="does not stream"):
        P.build_request(replace(GEMINI, stream=True), ProviderRequest("m", MESSAGES, {}), None)
    with pytest.raises(UserError, match="does not stream"):
        P.stream_parser()


# -- replies -----------------------------------------------------------------------------


def test_reply_fields_are_read_from_their_paths() -> None:
    r = P.parse_response(GEMINI, 200, gemini_reply())
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model,
            r.fingerprint) == ("Paris.", "STOP", 9, 2, "gemini-2.0-flash-001", None)


def test_optional_paths_that_are_not_there_leave_fields_unknown() -> None:
    r = P.parse_response(GEMINI, 200, reply(candidates=[{"content": {"parts": [
        {"text": "ok"}]}}]))
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model) == (
        "ok", None, None, None, None)


def test_optional_paths_that_are_not_configured_leave_fields_unknown() -> None:
    model = with_http(finish_reason_path=None, input_tokens_path=None,
                      output_tokens_path=None, model_path=None)
    r = P.parse_response(model, 200, gemini_reply())
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model) == (
        "Paris.", None, None, None, None)


@pytest.mark.parametrize(("value", "text"), [
    ({"answer": "Paris"}, '{"answer": "Paris"}'), (None, ""), (42, "42"), (True, "true"),
    ([{"text": "Pa"}, {"text": "ris"}], "Paris"),
])
def test_the_output_value_becomes_text(value: Any, text: str) -> None:
    assert P.parse_response(GEMINI, 200, gemini_reply(value)).text == text


def test_odd_usage_and_labels_are_normalised() -> None:
    r = P.parse_response(GEMINI, 200, gemini_reply(
        usageMetadata={"promptTokenCount": "9", "candidatesTokenCount": 2**31},
        modelVersion={"v": 1}))
    assert (r.input_tokens, r.output_tokens, r.model) == (9, None, '{"v": 1}')


@pytest.mark.parametrize(("body", "message"), [
    (b"", "is not JSON"), (b"<html>Bad Gateway</html>", "Bad Gateway"),
    (b'{"candidates": []}', "has no candidates.0.content.parts.0.text"),
    (b'{"candidates": [{"content": "x"}]}', "has no candidates.0.content.parts.0.text"),
    (b"[1, 2]", "has no candidates"), (b'"Paris"', "has no candidates"),
    (b"[" * 50_000, "nested too deeply"),
])
def test_nonsense_replies_are_one_line_provider_errors(body: bytes, message: str) -> None:
    with pytest.raises(ProviderError) as info:
        P.parse_response(GEMINI, 200, body)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    assert info.value.kind == "transient"


@pytest.mark.parametrize(("data", "path", "value"), [
    ({"a": [{"b": 1}]}, "a.0.b", 1), ([[5]], "0.0", 5), ({"0": "x"}, "0", "x"),
])
def test_dig_follows_dotted_paths(data: Any, path: str, value: Any) -> None:
    assert dig(data, path) == value


@pytest.mark.parametrize(("data", "path"), [
    ({"a": 1}, "b"), ({"a": 1}, "a.b"), ([1], "1"), ([1], "x"), ("s", "0"), (None, "a"),
])
def test_dig_raises_key_error_for_what_is_not_there(data: Any, path: str) -> None:
    with pytest.raises(KeyError):
        dig(data, path)


# -- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [
    (503, "transient"), (429, "rate_limit"), (401, "auth"), (403, "auth"), (500, "transient"),
    (400, "fatal"), (404, "fatal"),
])
def test_failed_statuses_use_the_common_reading_unless_retry_on_says(status: int,
                                                                     kind: str) -> None:
    assert P.classify(GEMINI, status, b"") == kind


def test_retry_on_overrides_a_status() -> None:
    model = with_http(retry_on={"400": "transient", "429": "fatal", "500": "not-a-kind"})
    assert [P.classify(model, s, b"") for s in (400, 429, 500)] == [
        "transient", "fatal", "transient"]
