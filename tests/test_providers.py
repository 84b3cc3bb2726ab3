from __future__ import annotations

import json

import httpx
import pytest

from promptlab.errors import ProviderError
from promptlab.providers import ProviderRequest, get_provider
from promptlab.spec import ModelSpec

M = ModelSpec("m", "openai", "x", None)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_openai_request_and_response() -> None:
    p = get_provider("openai")
    model = ModelSpec("m", "openai", "gpt-x", "http://127.0.0.1:9/v1/", headers=(("x-org", "o"),))
    http = p.build_request(model, ProviderRequest("gpt-x", MESSAGES, {"temperature": 0.2}), "k")
    assert http.url == "http://127.0.0.1:9/v1/chat/completions"
    assert http.headers["authorization"] == "Bearer k" and http.headers["x-org"] == "o"
    assert "authorization" in http.secret_headers
    assert json.loads(http.body) == {"model": "gpt-x", "messages": MESSAGES, "temperature": 0.2}
    body = {"model": "gpt-x-2024", "system_fingerprint": "fp1", "choices": [
        {"message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
    r = p.parse_response(M, 200, json.dumps(body).encode())
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens, r.model, r.fingerprint) == (
        "Hello", "stop", 5, 1, "gpt-x-2024", "fp1")


def test_anthropic_moves_system_out_of_messages_and_requires_max_tokens() -> None:
    p = get_provider("anthropic")
    model = ModelSpec("c", "anthropic", "claude", None)
    http = p.build_request(model, ProviderRequest("claude", MESSAGES, {}), "sk-ant")
    body = json.loads(http.body)
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert body["system"] == "Be brief." and body["messages"] == MESSAGES[1:]
    assert body["max_tokens"] == 1024
    assert http.headers["x-api-key"] == "sk-ant" and "anthropic-version" in http.headers
    r = p.parse_response(M, 200, json.dumps({
        "model": "claude-3", "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}).encode())
    assert (r.text, r.finish_reason, r.input_tokens, r.output_tokens) == ("Hi", "end_turn", 3, 1)


@pytest.mark.parametrize(("provider", "status", "body", "kind"), [
    ("openai", 429, b"", "rate_limit"), ("openai", 500, b"", "transient"),
    ("openai", 408, b"", "transient"), ("openai", 401, b"", "auth"),
    ("openai", 403, b"", "auth"), ("openai", 400, b"", "fatal"), ("openai", 404, b"", "fatal"),
    ("openai", 422, b"", "fatal"), ("anthropic", 529, b"", "rate_limit"),
    ("anthropic", 500, b'{"error": {"type": "overloaded_error"}}', "rate_limit"),
])
def test_failure_classification(provider: str, status: int, body: bytes, kind: str) -> None:
    assert get_provider(provider).classify(M, status, body) == kind


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_malformed_bodies_are_transient_provider_errors(provider: str) -> None:
    with pytest.raises(ProviderError) as info:
        get_provider(provider).parse_response(M, 200, b'{"choices": [')
    assert info.value.kind == "transient"


def test_request_goes_through_an_httpx_transport_unchanged() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    p = get_provider("openai")
    http = p.build_request(ModelSpec("m", "openai", "x", "http://127.0.0.1:1/v1"),
                           ProviderRequest("x", MESSAGES, {}), None)
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        resp = client.request(http.method, http.url, headers=http.headers, content=http.body)
    assert seen[0].content == http.body and "authorization" not in seen[0].headers
    assert p.parse_response(M, resp.status_code, resp.content).text == "ok"


@pytest.mark.parametrize(("provider", "base", "url"), [
    # Azure OpenAI: the deployment's query string stays a query string after the path.
    ("openai", "https://r.openai.azure.com/openai/deployments/d?api-version=2024-10-21",
     "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"),
    ("anthropic", "http://127.0.0.1:9/v1/?tenant=a", "http://127.0.0.1:9/v1/messages?tenant=a"),
    ("openai", "http://127.0.0.1:9/v1#frag", "http://127.0.0.1:9/v1/chat/completions"),
])
def test_base_url_query_string_stays_after_the_api_path(provider: str, base: str,
                                                        url: str) -> None:
    # Before: the path was appended to the whole URL, landing inside the query string.
    model = ModelSpec("m", provider, "x", base)
    http = get_provider(provider).build_request(model, ProviderRequest("x", MESSAGES, {
        "max_tokens": 5}), "k")
    assert http.url == url
