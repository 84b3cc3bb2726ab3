"""The OpenAI Responses API (``POST /responses``; ``endpoint: responses`` on provider
openai): input items and instructions out; output items (message text, function calls,
reasoning summaries) and detailed usage back; typed streaming events.

Params pass through as the API names them (``reasoning``, ``text``, ``temperature``...),
except ``max_tokens``, which becomes ``max_output_tokens``.
"""

from __future__ import annotations

from typing import Any

from promptlab.errors import ProviderError
from promptlab.providers.base import ProviderRequest, ProviderResponse
from promptlab.providers.normalize import (
    as_text,
    describe,
    load_json,
    make_response,
    make_tool_call,
)
from promptlab.providers.tools import responses_text_format, responses_tools
from promptlab.spec import ModelSpec

__all__ = ["ResponsesStream", "build_responses", "input_items", "parse_responses",
           "response_object"]


def input_items(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(instructions, input items): system messages become the instructions."""
    system = [as_text(m["content"]) for m in messages if m["role"] == "system"]
    items = []
    for m in messages:
        if m["role"] == "system":
            continue
        content = m["content"]
        if isinstance(content, list):
            text_kind = "output_text" if m["role"] == "assistant" else "input_text"
            content = [{"type": "input_image", "image_url": p["url"]}
                       if p.get("type") == "image" else {"type": text_kind, "text": p["text"]}
                       for p in content]
        items.append({"role": m["role"], "content": content})
    return ("\n\n".join(system) if system else None), items


def build_responses(model: ModelSpec, request: ProviderRequest) -> dict[str, Any]:
    """The JSON body of a Responses call (without ``stream``)."""
    instructions, items = input_items(request.messages)
    body: dict[str, Any] = {"model": request.model}
    if instructions is not None:
        body["instructions"] = instructions
    body["input"] = items
    body.update(responses_tools(request))
    params = dict(request.params)
    if "max_tokens" in params:
        params.setdefault("max_output_tokens", params.pop("max_tokens"))
        if params["max_output_tokens"] is None:
            del params["max_output_tokens"]
    fmt = responses_text_format(request.response_format)
    if fmt is not None:
        text = params.get("text")
        params["text"] = {**(text if isinstance(text, dict) else {}), "format": fmt}
    body.update(params)
    return body


def parse_responses(body: bytes | str) -> ProviderResponse:
    data = load_json(body, "OpenAI Responses reply")
    if not isinstance(data, dict):
        raise ProviderError(f"OpenAI Responses reply: expected a JSON object, got "
                            f"{describe(data)}")
    return response_object(data)


def response_object(data: dict[str, Any]) -> ProviderResponse:
    """A Response object (a reply body, or ``response.completed``'s ``response``)."""
    if data.get("error") and data.get("status") in (None, "failed"):
        raise ProviderError(f"OpenAI Responses reply is an error: {describe(data['error'])}")
    output = data.get("output")
    if not isinstance(output, list):
        raise ProviderError(f"OpenAI Responses reply has no output: {describe(data)}")
    texts: list[str] = []
    summaries: list[str] = []
    calls = []
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            content = item.get("content")
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict) and part.get("type") in ("output_text", "text"):
                    texts.append(as_text(part.get("text")))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    texts.append(as_text(part.get("refusal")))
        elif kind == "function_call":
            calls.append(make_tool_call(item.get("name"), item.get("arguments"),
                                        item.get("call_id") or item.get("id")))
        elif kind == "reasoning":
            summary = item.get("summary")
            for part in summary if isinstance(summary, list) else []:
                if isinstance(part, dict):
                    summaries.append(as_text(part.get("text")))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    cached = usage.get("input_tokens_details")
    reasoning = usage.get("output_tokens_details")
    status = data.get("status")
    incomplete = data.get("incomplete_details")
    if status == "incomplete" and isinstance(incomplete, dict):
        finish: Any = incomplete.get("reason") or "incomplete"
    elif status in (None, "completed"):
        finish = "tool_calls" if calls else "stop"
    else:
        finish = status
    return make_response(
        "".join(texts), finish, usage.get("input_tokens"), usage.get("output_tokens"),
        data.get("model"), data.get("system_fingerprint") or data.get("service_tier"),
        tool_calls=calls,
        reasoning_tokens=reasoning.get("reasoning_tokens") if isinstance(reasoning, dict)
        else None,
        cached_input_tokens=cached.get("cached_tokens") if isinstance(cached, dict) else None,
        reasoning="\n\n".join(summaries) if summaries else None)


class ResponsesStream:
    """``response.output_text.delta`` events carry the text; ``response.completed`` (or
    ``response.incomplete``) the whole Response; ``error`` and ``response.failed`` fail it."""

    def __init__(self) -> None:
        self.final: ProviderResponse | None = None

    def feed(self, data: str) -> str:
        if data.strip() == "[DONE]":
            return ""
        event = load_json(data, "OpenAI Responses stream event")
        if not isinstance(event, dict):
            raise ProviderError(f"OpenAI Responses stream event: expected a JSON object, got "
                                f"{describe(event)}")
        kind = event.get("type")
        if kind == "error":
            raise ProviderError(f"stream error: {describe(event.get('message') or event)}",
                                "transient")
        if kind == "response.failed":
            response = event.get("response")
            error = response.get("error") if isinstance(response, dict) else None
            raise ProviderError(f"stream error: {describe(error or event)}", "transient")
        if kind == "response.output_text.delta":
            return as_text(event.get("delta"))
        if kind in ("response.completed", "response.incomplete"):
            response = event.get("response")
            if not isinstance(response, dict):
                raise ProviderError(f"OpenAI Responses stream: {kind} without a response: "
                                    f"{describe(event)}")
            self.final = response_object(response)
        return ""

    def result(self) -> ProviderResponse:
        if self.final is None:
            raise ProviderError("OpenAI Responses stream ended before response.completed",
                                "transient")
        return self.final
