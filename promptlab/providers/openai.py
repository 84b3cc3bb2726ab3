"""OpenAI Chat Completions and Completions, and every server that speaks them (vLLM,
Ollama, llama.cpp, LM Studio, ...), streaming or not."""

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

__all__ = ["OpenAIProvider", "OpenAIStream"]


def completion_prompt(messages: list[dict[str, str]]) -> str:
    """A text-completion prompt: the messages' contents, in order, one after another."""
    return "\n".join(m["content"] for m in messages)


class OpenAIProvider:
    name = "openai"
    default_base_url = "https://api.openai.com/v1"

    def build_request(self, model: ModelSpec, request: ProviderRequest,
                      api_key: str | None) -> HttpRequest:
        body: dict[str, Any] = {"model": request.model}
        if model.endpoint == "completions":
            body["prompt"] = completion_prompt(request.messages)
            path = "/completions"
        else:
            body["messages"] = request.messages
            path = "/chat/completions"
        body.update(request.params)
        if model.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = base_headers(model)
        if model.stream:
            headers["accept"] = "text/event-stream"
        secret = set(model.secret_headers)
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
            secret.add("authorization")
        base = (model.base_url or self.default_base_url).rstrip("/")
        return HttpRequest("POST", base + path, headers, dumps(body),
                           frozenset(h.lower() for h in secret))

    def parse_response(self, model: ModelSpec, status: int, body: bytes) -> ProviderResponse:
        try:
            data = json.loads(body)
            choice = data["choices"][0]
            message = choice.get("message")
            text = (message.get("content") or "") if message is not None else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(f"malformed completion: {type(exc).__name__}: {exc}",
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

    def parse_choices(self, model: ModelSpec, status: int, body: bytes) -> list[ProviderResponse]:
        """Every choice of an n > 1 reply, in index order; usage rides on the first."""
        first = self.parse_response(model, status, body)
        data = json.loads(body)
        out = [first]
        for choice in sorted(data["choices"], key=lambda c: c.get("index", 0))[1:]:
            message = choice.get("message")
            text = (message.get("content") or "") if message is not None else choice["text"]
            out.append(ProviderResponse(text, choice.get("finish_reason"), None, None,
                                        first.model, first.fingerprint))
        return out

    def classify(self, model: ModelSpec, status: int, body: bytes) -> ErrorKind:
        return classify_status(status)

    def stream_parser(self) -> OpenAIStream:
        return OpenAIStream()


class OpenAIStream:
    """Chat (``delta.content``) and text (``text``) completion chunks, then ``[DONE]``."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.model: str | None = None
        self.fingerprint: str | None = None
        self.done = False

    def feed(self, data: str) -> str:
        if data.strip() == "[DONE]":
            self.done = True
            return ""
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderError("malformed stream chunk", "transient") from None
        if "error" in chunk:
            raise ProviderError(f"stream error: {chunk['error']}", "transient")
        self.model = chunk.get("model") or self.model
        self.fingerprint = chunk.get("system_fingerprint") or self.fingerprint
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        text = ""
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta")
            piece = (delta.get("content") if isinstance(delta, dict) else choice.get("text"))
            if piece:
                text += piece
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if text:
            self.parts.append(text)
        return text

    def result(self) -> ProviderResponse:
        if not self.done:
            raise ProviderError("stream ended before [DONE]", "transient")
        return ProviderResponse("".join(self.parts), self.finish_reason,
                                self.usage.get("prompt_tokens"),
                                self.usage.get("completion_tokens"), self.model,
                                self.fingerprint)
