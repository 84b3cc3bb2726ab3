"""OpenAI Chat Completions and Completions, and every server that speaks them (vLLM,
Ollama, llama.cpp, LM Studio, ...), streaming or not."""

from __future__ import annotations

import json
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
    FINGERPRINT_CHARS,
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
from promptlab.providers.responses import (
    ResponsesStream,
    build_responses,
    parse_responses,
    response_object,
)
from promptlab.providers.tools import chat_tools
from promptlab.spec import ModelSpec

__all__ = ["OpenAIProvider", "OpenAIStream"]


def completion_prompt(messages: list[dict[str, Any]]) -> str:
    """A text-completion prompt: the messages' contents, in order, one after another."""
    return "\n".join(as_text(m["content"]) for m in messages)


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages in Chat Completions' form: an image part becomes ``image_url``; an
    Anthropic prompt-cache marker is left out (OpenAI caches long prompts by itself)."""
    out = []
    for m in messages:
        if "cache_control" in m:
            m = {k: v for k, v in m.items() if k != "cache_control"}
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": "image_url", "image_url": {"url": p["url"]}}
                       if p.get("type") == "image" else p for p in content]
            m = {**m, "content": content}
        out.append(m)
    return out


class OpenAIProvider:
    name = "openai"
    default_base_url = "https://api.openai.com/v1"

    def build_request(self, model: ModelSpec, request: ProviderRequest,
                      api_key: str | None) -> HttpRequest:
        body: dict[str, Any] = {"model": request.model}
        if model.endpoint == "responses":
            body, path = build_responses(model, request), "/responses"
        elif model.endpoint == "completions":
            body["prompt"] = completion_prompt(request.messages)
            path = "/completions"
            body.update(request.params)
        else:
            body["messages"] = chat_messages(request.messages)
            path = "/chat/completions"
            body.update(chat_tools(request))
            body.update(request.params)
        if model.stream and model.endpoint == "responses":
            body["stream"] = True
        elif model.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = base_headers(model)
        if model.stream:
            headers["accept"] = "text/event-stream"
        secret = set(model.secret_headers)
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
            secret.add("authorization")
        url = api_url(model.base_url or self.default_base_url, path)
        return HttpRequest("POST", url, headers, dumps(body),
                           frozenset(h.lower() for h in secret))

    def parse_response(self, model: ModelSpec, status: int, body: bytes) -> ProviderResponse:
        if model.endpoint == "responses":
            return parse_responses(body)
        return self.parse_choices(model, status, body)[0]

    def parse_choices(self, model: ModelSpec, status: int, body: bytes) -> list[ProviderResponse]:
        """Every choice of a reply, in index order; usage rides on the first.

        A reply with one choice (n = 1) gives a list of one."""
        return self.choices_of(load_json(body, "OpenAI reply"))

    def parse_object(self, model: ModelSpec, data: Any) -> ProviderResponse:
        """A reply body already parsed (a batch result line's ``response.body``)."""
        if model.endpoint == "responses":
            if not isinstance(data, dict):
                raise ProviderError(f"OpenAI Responses reply: expected a JSON object, got "
                                    f"{describe(data)}")
            return response_object(data)
        return self.choices_of(data)[0]

    @staticmethod
    def choices_of(data: Any) -> list[ProviderResponse]:
        """Every choice of a parsed reply, in index order; usage rides on the first."""
        if not isinstance(data, dict):
            raise ProviderError(f"OpenAI reply: expected a JSON object, got {describe(data)}")
        choices = data.get("choices")
        if not choices and data.get("error") is not None:
            raise ProviderError(f"OpenAI reply is an error: {describe(data['error'])}")
        if not isinstance(choices, list) or not choices:
            raise ProviderError(f"OpenAI reply has no choices: {describe(data)}")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        details = _usage_details(usage)
        out: list[ProviderResponse] = []
        ordered = enumerate(choices) if len(choices) == 1 else sorted(enumerate(choices),
                                                                       key=_index_order)
        for position, choice in ordered:
            text = _choice_text(choice, position)
            first = not out
            message = choice.get("message")
            calls = _message_tool_calls(message) if isinstance(message, dict) else []
            out.append(make_response(
                text, choice.get("finish_reason"),
                usage.get("prompt_tokens") if first else None,
                usage.get("completion_tokens") if first else None,
                data.get("model"), data.get("system_fingerprint"), tool_calls=calls,
                **(details if first else {})))
        return out

    def classify(self, model: ModelSpec, status: int, body: bytes) -> ErrorKind:
        return classify_status(status)

    def stream_parser(self) -> OpenAIStream:
        return OpenAIStream()

    # -- the Batch API (a line of the input file; a line of the output or error file) --

    batch_api = "openai"

    def batch_line(self, model: ModelSpec, http: HttpRequest,
                   custom_id: str) -> dict[str, Any]:
        """The request as a line of a Batch API input file (a batch never streams)."""
        body = json.loads(http.body)
        body.pop("stream", None)
        body.pop("stream_options", None)
        path = {"completions": "/v1/completions", "responses": "/v1/responses"}.get(
            model.endpoint, "/v1/chat/completions")
        return {"custom_id": custom_id, "method": "POST", "url": path, "body": body}

    def parse_batch_result(self, model: ModelSpec, line: dict[str, Any]) -> BatchItem:
        """A line of the output or error file: ``response`` (status and body) or ``error``
        (e.g. code batch_expired for a request the batch did not reach in time)."""
        custom_id = str(line.get("custom_id"))
        error = line.get("error")
        response = line.get("response")
        if isinstance(error, dict):
            code = str(error.get("code") or "errored")
            kind = {"batch_expired": "expired", "batch_cancelled": "canceled"}.get(code, code)
            return BatchItem(custom_id, None, None, kind,
                             f"{code}: {error.get('message') or ''}".strip(),
                             retryable=code in ("batch_expired", "server_error", "timeout"))
        if not isinstance(response, dict):
            return BatchItem(custom_id, None, None, "errored",
                             f"result line without response or error: {describe(line)}")
        status = response.get("status_code")
        status = status if isinstance(status, int) else None
        if status is None or status >= 400:
            body = dumps(response.get("body"))
            kind = classify_status(status or 500)
            return BatchItem(custom_id, None, status, "errored",
                             f"HTTP {status}: {body[:500].decode('utf-8', 'replace')}",
                             retryable=kind in ("rate_limit", "transient"))
        try:
            return BatchItem(custom_id, self.parse_object(model, response.get("body")),
                             status)
        except ProviderError as exc:
            return BatchItem(custom_id, None, status, "errored", str(exc))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage_details(usage: dict[str, Any]) -> dict[str, Any]:
    """Reasoning and cached token counts from a Chat Completions usage object."""
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    return {"cached_input_tokens": prompt.get("cached_tokens") if isinstance(prompt, dict)
            else None,
            "reasoning_tokens": completion.get("reasoning_tokens")
            if isinstance(completion, dict) else None}


def _message_tool_calls(message: dict[str, Any]) -> list[Any]:
    calls = message.get("tool_calls")
    out = []
    for call in calls if isinstance(calls, list) else []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            out.append(make_tool_call(fn.get("name"), fn.get("arguments"), call.get("id")))
    return out


def _index_order(item: tuple[int, Any]) -> tuple[int, int]:
    """Sort by the choice's own index where it has a usable one, else by position."""
    position, choice = item
    index = choice.get("index") if isinstance(choice, dict) else None
    if isinstance(index, int) and not isinstance(index, bool):
        return index, position
    return position, position


def _choice_text(choice: Any, position: int) -> Any:
    """The raw text of a chat (``message.content``) or text (``text``) completion choice."""
    if not isinstance(choice, dict):
        raise ProviderError(f"OpenAI reply: choice {position} is not an object: "
                            f"{describe(choice)}")
    message = choice.get("message")
    if isinstance(message, dict):
        return message.get("content")
    if "text" in choice:
        return choice["text"]
    raise ProviderError(f"OpenAI reply: choice {position} has neither message.content nor "
                        f"text: {describe(choice)}")


class OpenAIStream:
    """Chat (``delta.content``) and text (``text``) completion chunks, then ``[DONE]``; or
    the Responses API's typed events (``response.*``), told apart by their first event."""

    def __init__(self) -> None:
        self.responses: ResponsesStream | None = None
        self.calls: dict[int, dict[str, str]] = {}
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.model: str | None = None
        self.fingerprint: str | None = None
        self.details: dict[str, Any] = {}
        self.done = False

    def feed(self, data: str) -> str:
        if self.responses is not None:
            return self.responses.feed(data)
        if data.strip() == "[DONE]":
            self.done = True
            return ""
        chunk = load_json(data, "OpenAI stream chunk")
        if not isinstance(chunk, dict):
            raise ProviderError(f"OpenAI stream chunk: expected a JSON object, got "
                                f"{describe(chunk)}")
        kind = chunk.get("type")
        if isinstance(kind, str) and (kind.startswith("response.") or kind == "error"):
            self.responses = ResponsesStream()
            return self.responses.feed(data)
        if "error" in chunk:
            raise ProviderError(f"stream error: {describe(chunk['error'])}")
        # Labels and counts are made storable here, so a later chunk's garbage cannot
        # replace a good earlier value.
        model = as_label(chunk.get("model"), MODEL_CHARS)
        self.model = model or self.model
        fingerprint = as_label(chunk.get("system_fingerprint"), FINGERPRINT_CHARS)
        self.fingerprint = fingerprint or self.fingerprint
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self.input_tokens = as_token_count(usage.get("prompt_tokens"))
            self.output_tokens = as_token_count(usage.get("completion_tokens"))
            self.details = _usage_details(usage)
        choices = chunk.get("choices")
        if choices is None:  # some servers send "choices": null with the usage
            choices = []
        if not isinstance(choices, list):
            raise ProviderError(f"OpenAI stream chunk has malformed choices: "
                                f"{describe(choices)}")
        text = ""
        for choice in choices:
            if not isinstance(choice, dict):
                raise ProviderError(f"OpenAI stream chunk has a choice that is not an "
                                    f"object: {describe(choice)}")
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                self._calls(delta["tool_calls"])
            piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if piece is not None:
                text += as_text(piece)
            finish = as_label(choice.get("finish_reason"), FINISH_REASON_CHARS)
            if finish:
                self.finish_reason = finish
        if text:
            self.parts.append(text)
        return text

    def _calls(self, deltas: list[Any]) -> None:
        """Tool calls arrive in pieces: the name first, the arguments' JSON text in parts."""
        for d in deltas:
            if not isinstance(d, dict):
                continue
            given = d.get("index")
            index = given if isinstance(given, int) else len(self.calls)
            call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            fn = _object(d.get("function"))
            for key, value in (("id", d.get("id")), ("name", fn.get("name")),
                               ("arguments", fn.get("arguments"))):
                if isinstance(value, str):
                    call[key] += value

    def result(self) -> ProviderResponse:
        if self.responses is not None:
            return self.responses.result()
        if not self.done:
            raise ProviderError("OpenAI stream ended before [DONE]", "transient")
        calls = [make_tool_call(c["name"], c["arguments"], c["id"] or None)
                 for _, c in sorted(self.calls.items())]
        return make_response("".join(self.parts), self.finish_reason, self.input_tokens,
                             self.output_tokens, self.model, self.fingerprint,
                             tool_calls=calls, **self.details)
