"""Anthropic Messages API, streaming or not."""

from __future__ import annotations

from typing import Any

from promptlab.errors import ProviderError
from promptlab.providers.base import (
    BatchItem,
    ErrorKind,
    HttpRequest,
    ProviderRequest,
    ProviderResponse,
    api_url,
    base_headers,
    classify_status,
    dumps,
)
from promptlab.providers.normalize import (
    FINISH_REASON_CHARS,
    MODEL_CHARS,
    as_label,
    as_text,
    as_token_count,
    describe,
    load_json,
    make_response,
    make_tool_call,
)
from promptlab.providers.tools import anthropic_tools
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
        messages = [_message(m) for m in request.messages if m["role"] != "system"]
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        system = _system([m for m in request.messages if m["role"] == "system"])
        if system:
            body["system"] = system
        body.update(anthropic_tools(request))
        body.update(request.params)
        if body.get("max_tokens") is None:  # required by the API, and null is refused
            body["max_tokens"] = DEFAULT_MAX_TOKENS
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
        url = api_url(model.base_url or self.default_base_url, "/messages")
        return HttpRequest("POST", url, headers, dumps(body),
                           frozenset(h.lower() for h in secret))

    def parse_response(self, model: ModelSpec, status: int, body: bytes) -> ProviderResponse:
        return self.parse_message(load_json(body, "Anthropic reply"))

    @staticmethod
    def parse_message(data: Any) -> ProviderResponse:
        """A Message object already parsed (a reply body, or a batch result's message)."""
        if not isinstance(data, dict):
            raise ProviderError(f"Anthropic reply: expected a JSON object, got "
                                f"{describe(data)}")
        if data.get("type") == "error" or ("content" not in data and "error" in data):
            raise ProviderError(f"Anthropic reply is an error: {describe(data.get('error'))}")
        if "content" not in data:
            raise ProviderError(f"Anthropic reply has no content: {describe(data)}")
        usage = _object(data.get("usage"))
        content = data["content"]
        calls, thinking = [], []
        if isinstance(content, list):
            blocks = [b for b in content if isinstance(b, dict)]
            calls = [make_tool_call(b.get("name"), b.get("input"), b.get("id"))
                     for b in blocks if b.get("type") == "tool_use"]
            thinking = [as_text(b.get("thinking")) for b in blocks if b.get("type") == "thinking"]
            if calls or thinking:  # the text is the text blocks; the rest is stored apart
                content = [b for b in blocks if b.get("type", "text") == "text"]
        return make_response(content, data.get("stop_reason"), _input_total(usage),
                             usage.get("output_tokens"), data.get("model"), tool_calls=calls,
                             reasoning="\n\n".join(thinking) if thinking else None,
                             **_cache_counts(usage))

    def classify(self, model: ModelSpec, status: int, body: bytes) -> ErrorKind:
        # 529 is Anthropic's "overloaded": back off like a rate limit, as the API asks.
        if status == 529 or b"overloaded_error" in body[:2000]:
            return "rate_limit"
        return classify_status(status)

    def stream_parser(self) -> AnthropicStream:
        return AnthropicStream()

    # -- Message Batches (a request of the batch; a line of its results) ----------------

    batch_api = "anthropic"

    def batch_line(self, model: ModelSpec, http: HttpRequest,
                   custom_id: str) -> dict[str, Any]:
        """The request as one of a Message Batch's requests (a batch never streams)."""
        params = load_json(http.body, "request")
        params.pop("stream", None)
        return {"custom_id": custom_id, "params": params}

    def parse_batch_result(self, model: ModelSpec, line: dict[str, Any]) -> BatchItem:
        """A results line: succeeded (a message), errored, canceled or expired."""
        custom_id = str(line.get("custom_id"))
        result = _object(line.get("result"))
        kind = result.get("type")
        if kind == "succeeded":
            try:
                return BatchItem(custom_id, self.parse_message(result.get("message")), 200)
            except ProviderError as exc:
                return BatchItem(custom_id, None, 200, "errored", str(exc))
        if kind == "errored":
            error = _object(_object(result.get("error")).get("error"))
            code = str(error.get("type") or "error")
            return BatchItem(custom_id, None, None, "errored",
                             f"{code}: {error.get('message') or ''}".strip(),
                             retryable=code in ("api_error", "overloaded_error",
                                                "rate_limit_error"))
        if kind in ("expired", "canceled"):
            return BatchItem(custom_id, None, None, str(kind), f"the batch item was {kind}",
                             retryable=kind == "expired")
        return BatchItem(custom_id, None, None, "errored",
                         f"unknown result type: {describe(result)}")


def _system(messages: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """The system prompt: one text, or text blocks when a system message carries a
    prompt-cache marker (``cache_control`` is set on blocks, not on a plain string)."""
    if not any("cache_control" in m for m in messages):
        return "\n\n".join(as_text(m["content"]) for m in messages)
    return [{"type": "text", "text": as_text(m["content"]),
             **({"cache_control": m["cache_control"]} if "cache_control" in m else {})}
            for m in messages]


def _message(m: dict[str, Any]) -> dict[str, Any]:
    """A message with image parts as Anthropic image blocks (base64 for data URLs); its
    prompt-cache marker goes on its last block, where Anthropic reads it."""
    if "cache_control" in m:
        m = dict(m)
        marker = m.pop("cache_control")
        content = m["content"]
        blocks = _message(m)["content"] if isinstance(content, list) else [
            {"type": "text", "text": as_text(content)}]
        return {**m, "content": [*blocks[:-1], {**blocks[-1], "cache_control": marker}]}
    content = m["content"]
    if not isinstance(content, list):
        return m
    blocks = []
    for part in content:
        if part.get("type") != "image":
            blocks.append(part)
            continue
        url = str(part["url"])
        if url.startswith("data:"):
            head, _, data = url.partition(",")
            media = head[5:].split(";")[0] or "image/png"
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": media,
                                                       "data": data}})
        else:
            blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return {**m, "content": blocks}


def _input_total(usage: dict[str, Any]) -> Any:
    """All input tokens: Anthropic counts cache reads and writes apart from input_tokens."""
    counts = [as_token_count(usage.get(k)) for k in (
        "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")]
    if counts[0] is None:
        return usage.get("input_tokens")
    return sum(c or 0 for c in counts)


def _cache_counts(usage: dict[str, Any]) -> dict[str, Any]:
    return {"cached_input_tokens": usage.get("cache_read_input_tokens"),
            "cache_write_tokens": usage.get("cache_creation_input_tokens")}


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or {} for anything else (a missing or malformed optional part)."""
    return value if isinstance(value, dict) else {}


class AnthropicStream:
    """message_start, content_block_delta..., message_delta, message_stop; or an error."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}  # tool_use and thinking blocks by index
        self.done = False

    def feed(self, data: str) -> str:
        event = load_json(data, "Anthropic stream event")
        if not isinstance(event, dict):
            raise ProviderError(f"Anthropic stream event: expected a JSON object, got "
                                f"{describe(event)}")
        kind = event.get("type")
        if kind == "error":
            error = event.get("error")
            retry = "rate_limit" if _object(error).get("type") in (
                "overloaded_error", "rate_limit_error") else "transient"
            raise ProviderError(f"stream error: {describe(error)}", retry)
        # Values are made storable as they arrive, so a later event's garbage cannot
        # replace a good earlier value.
        if kind == "message_start":
            message = _object(event.get("message"))
            self.model = as_label(message.get("model"), MODEL_CHARS)
            self._count(_object(message.get("usage")))
        elif kind == "content_block_start":
            block = _object(event.get("content_block"))
            if block.get("type") in ("tool_use", "thinking") and isinstance(
                    event.get("index"), int):
                self.blocks[event["index"]] = {"type": block["type"], "name": block.get("name"),
                                               "id": block.get("id"), "text": ""}
        elif kind == "content_block_delta":
            delta = _object(event.get("delta"))
            index = event.get("index")
            held = self.blocks.get(index) if isinstance(index, int) else None
            piece = delta.get("partial_json") if delta.get("type") == "input_json_delta" else (
                delta.get("thinking") if delta.get("type") == "thinking_delta" else None)
            if held is not None and isinstance(piece, str):
                held["text"] += piece
            if delta.get("type") == "text_delta" and delta.get("text") is not None:
                text = as_text(delta["text"])
                if text:
                    self.parts.append(text)
                return text
        elif kind == "message_delta":
            stop = as_label(_object(event.get("delta")).get("stop_reason"),
                            FINISH_REASON_CHARS)
            self.stop_reason = stop or self.stop_reason
            self._count(_object(event.get("usage")))
        elif kind == "message_stop":
            self.done = True
        return ""

    def _count(self, usage: dict[str, Any]) -> None:
        for key in ("cache_read_input_tokens", "cache_creation_input_tokens"):
            if as_token_count(usage.get(key)) is not None:
                self.cache[key] = usage[key]
        tokens_in = as_token_count(_input_total({**self.cache, **usage}))
        tokens_out = as_token_count(usage.get("output_tokens"))
        self.input_tokens = self.input_tokens if tokens_in is None else tokens_in
        self.output_tokens = self.output_tokens if tokens_out is None else tokens_out

    def result(self) -> ProviderResponse:
        if not self.done:
            raise ProviderError("Anthropic stream ended before message_stop", "transient")
        blocks = [b for _, b in sorted(self.blocks.items())]
        calls = [make_tool_call(b["name"], b["text"], b["id"]) for b in blocks
                 if b["type"] == "tool_use"]
        thinking = [b["text"] for b in blocks if b["type"] == "thinking"]
        return make_response("".join(self.parts), self.stop_reason, self.input_tokens,
                             self.output_tokens, self.model, tool_calls=calls,
                             reasoning="\n\n".join(thinking) if thinking else None,
                             **_cache_counts(self.cache))
