"""OpenAI Chat Completions, and every server that speaks it (vLLM, Ollama, llama.cpp, ...)."""

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

__all__ = ["OpenAIProvider"]


class OpenAIProvider:
    name = "openai"
    default_base_url = "https://api.openai.com/v1"

    def build_request(self, model: ModelSpec, request: ProviderRequest,
                      api_key: str | None) -> HttpRequest:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages}
        body.update(request.params)
        headers = base_headers(model)
        secret = set(model.secret_headers)
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
            secret.add("authorization")
        base = (model.base_url or self.default_base_url).rstrip("/")
        return HttpRequest("POST", f"{base}/chat/completions", headers, dumps(body),
                           frozenset(h.lower() for h in secret))

    def parse_response(self, status: int, body: bytes) -> ProviderResponse:
        try:
            data = json.loads(body)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(f"malformed chat completion: {type(exc).__name__}: {exc}",
                                "transient") from None
        usage = data.get("usage") or {}
        return ProviderResponse(
            text=text,
            finish_reason=choice.get("finish_reason"),
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            model=data.get("model"),
            fingerprint=data.get("system_fingerprint"),
        )

    def classify(self, status: int, body: bytes) -> ErrorKind:
        return classify_status(status)
