"""Anthropic Messages API."""

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

__all__ = ["AnthropicProvider"]

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
        headers = base_headers(model)
        headers.setdefault("anthropic-version", API_VERSION)
        secret = set(model.secret_headers)
        if api_key:
            headers["x-api-key"] = api_key
            secret.add("x-api-key")
        base = (model.base_url or self.default_base_url).rstrip("/")
        return HttpRequest("POST", f"{base}/messages", headers, dumps(body),
                           frozenset(h.lower() for h in secret))

    def parse_response(self, status: int, body: bytes) -> ProviderResponse:
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

    def classify(self, status: int, body: bytes) -> ErrorKind:
        # 529 is Anthropic's "overloaded": back off like a rate limit, as the API asks.
        if status == 529 or b"overloaded_error" in body[:2000]:
            return "rate_limit"
        return classify_status(status)
