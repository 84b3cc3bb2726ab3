"""Anthropic Messages API, streaming or not."""

from __future__ import annotations

import json
from typing import Any

from promptlab.errors import ProviderError
from promptlab.providers.base import (
    ErrorKind,
    HttpRequest,
    ProviderRequest,
    ProviderResponse,
    base_headers,
    classify_status,
    dumps,
)
from promptlab.spec import ModelSpec

__all__ = ["AnthropicProvider", "AnthropicStream"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider:
    name = "anthropic"
    default_base_url = "https://api.anthropic.com/v1"

    def build_request(self, model: ModelSpec, request: ProviderRequest,
                      api_key: str | None) -> HttpRequest:
        # Anthropic takes the system prompt as a top-level field, not a message.
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        messages = [m for m in request.messages if m["role"] != "system"]
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if system:
            body["system"] = system
        body.update(request.params)
        body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)  # required by the API
        if model.stream:
            body["stream"] = True
        headers = base_headers(model)
        if model.stream:
            headers["accept"] = "text/event-stream"
        headers.setdefault("anthropic-version", API_VERSION)
        secret = set(model.secret_headers)
        if api_key:
            headers["x-api-key"] = api_key
            secret.add("x-api-key")
        base = (model.base_url or self.default_base_url).rstrip("/")
        return HttpRequest("POST", f"{base}/messages", headers, dumps(body),
                           frozenset(h.lower() for h in secret))

    def parse_response(self, model: ModelSpec, status: int, body: bytes) -> ProviderResponse:
        try:
            data = json.loads(body)
            text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"malformed message: {type(exc).__name__}: {exc}",
                                "transient") from None
        usage = data.get("usage") or {}
        return ProviderResponse(
            text=text,
            finish_reason=data.get("stop_reason"),
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            model=data.get("model"),
        )

    def classify(self, model: ModelSpec, status: int, body: bytes) -> ErrorKind:
        # 529 is Anthropic's "overloaded": back off like a rate limit, as the API asks.
        if status == 529 or b"overloaded_error" in body[:2000]:
            return "rate_limit"
        return classify_status(status)

    def stream_parser(self) -> AnthropicStream:
        return AnthropicStream()


class AnthropicStream:
    """message_start, content_block_delta..., message_delta, message_stop; or an error."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.done = False

    def feed(self, data: str) -> str:
        try:
            event = json.loads(data)
        except ValueError:
            raise ProviderError("malformed stream event", "transient") from None
        kind = event.get("type")
        if kind == "error":
            err = event.get("error") or {}
            retry = "rate_limit" if err.get("type") in ("overloaded_error",
                                                         "rate_limit_error") else "transient"
            raise ProviderError(f"stream error: {err.get('type')}: {err.get('message')}", retry)
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model")
            usage = message.get("usage") or {}
            self.input_tokens = usage.get("input_tokens")
            self.output_tokens = usage.get("output_tokens")
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                self.parts.append(delta["text"])
                return str(delta["text"])
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            usage = event.get("usage") or {}
            if usage.get("output_tokens") is not None:
                self.output_tokens = usage["output_tokens"]
            if usage.get("input_tokens") is not None:
                self.input_tokens = usage["input_tokens"]
        elif kind == "message_stop":
            self.done = True
        return ""

    def result(self) -> ProviderResponse:
        if not self.done:
            raise ProviderError("stream ended before message_stop", "transient")
        return ProviderResponse("".join(self.parts), self.stop_reason, self.input_tokens,
                                self.output_tokens, self.model)
