"""Wire formats the mock server speaks: OpenAI chat and text completions, Anthropic
Messages and a Gemini-shaped ``generateContent``, as JSON bodies or SSE streams; the
OpenAI Responses API is in `mock_responses`.

Given tools (and a tool_choice other than none), the mock calls one: the tool named by
tool_choice, else the first. Its arguments follow the tool's JSON schema: a string is the
prompt's last word (punctuation stripped), an integer the prompt's word count, a number
1.5, a boolean true, an enum its first value. ``MOCK_CACHED=<n>`` in a prompt reports n
input tokens read from the prompt cache; a ``reasoning`` / ``reasoning_effort`` /
``thinking`` param adds reasoning (3 tokens, and a summary or thinking block)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

__all__ = ["mock_reply", "prompt_text", "answer", "stream_frames", "truncate", "tool_call",
           "cached_tokens", "input_tokens"]

_CACHED = re.compile(r"MOCK_CACHED=(\d+)")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")


def prompt_text(body: dict[str, Any]) -> str:
    """The text a request asks about: the last user message, the prompt, Gemini contents
    or Responses input."""
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    if isinstance(body.get("input"), str):
        return str(body["input"])
    if isinstance(body.get("input"), list):
        body = {"messages": body["input"]}
    if isinstance(body.get("contents"), list):
        for c in reversed(body["contents"]):
            if isinstance(c, dict) and c.get("role", "user") == "user":
                return " ".join(str(p.get("text", "")) for p in c.get("parts", [])
                                if isinstance(p, dict))
        return ""
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
            return str(content)
    return ""


def mock_reply(body: dict[str, Any]) -> str:
    """The deterministic output for a request body (any flavour), before max_tokens.

    It echoes the request's prompt text and appends words chosen by a hash of the whole
    request, minus ``stream`` settings, so streaming and not give the same text and any
    other change gives another.
    """
    keyed = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).digest()
    tail = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:3])
    return f"{prompt_text(body)[:200]} -> {tail}"


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def truncate(body: dict[str, Any]) -> tuple[str, bool]:
    """The reply cut to max_tokens words; True when it was cut."""
    text = mock_reply(body)
    limit = body.get("max_tokens")
    gen = body.get("generationConfig")
    if limit is None and isinstance(gen, dict):
        limit = gen.get("maxOutputTokens")
    words = text.split(" ")
    if isinstance(limit, int) and len(words) > limit:
        return " ".join(words[:limit]), True
    return text, False


def cached_tokens(body: dict[str, Any]) -> int:
    """Input tokens the mock says its prompt cache served (``MOCK_CACHED=<n>``)."""
    m = _CACHED.search(prompt_text(body))
    return min(int(m.group(1)), input_tokens(body)) if m else 0


def tool_call(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The deterministic (name, arguments) the mock calls, or None without tools."""
    tools = [t.get("function", t) for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if not tools or choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    tool = tools[0]
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        tool = next((t for t in tools if t.get("name") == name), tool)
    schema = tool.get("parameters") or tool.get("input_schema") or {}
    words = prompt_text(body).split()
    last = words[-1].strip(".,;:!?\"'") if words else ""
    args: dict[str, Any] = {}
    for prop, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if isinstance(spec, dict) and spec.get("enum"):
            args[prop] = spec["enum"][0]
        elif kind == "integer":
            args[prop] = len(words)
        elif kind == "number":
            args[prop] = 1.5
        elif kind == "boolean":
            args[prop] = True
        else:
            args[prop] = last
    return str(tool.get("name")), args


def input_tokens(body: dict[str, Any]) -> int:
    return _input_tokens(body)


def _input_tokens(body: dict[str, Any]) -> int:
    if isinstance(body.get("input"), list | str):
        return (_tokens(str(body["instructions"])) if body.get("instructions") else 0) + _tokens(
            prompt_text(body))
    n = _tokens(str(body.get("system", ""))) if body.get("system") else 0
    if isinstance(body.get("prompt"), str):
        return n + _tokens(body["prompt"])
    if isinstance(body.get("contents"), list):
        return n + _tokens(prompt_text(body))
    return n + sum(_tokens(str(m.get("content", ""))) for m in body.get("messages") or [])


def answer(flavour: str, body: dict[str, Any]) -> dict[str, Any]:
    text, cut = truncate(body)
    tin, tout = _input_tokens(body), _tokens(text)
    call = tool_call(body)
    cached = cached_tokens(body)
    if flavour == "anthropic":
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if body.get("thinking"):
            content.insert(0, {"type": "thinking", "thinking": "mock thinks it over",
                               "signature": "sig_mock"})
        if call is not None:
            content.append({"type": "tool_use", "id": "toolu_mock", "name": call[0],
                            "input": call[1]})
        usage: dict[str, Any] = {"input_tokens": tin - cached, "output_tokens": tout}
        if cached:
            usage.update(cache_read_input_tokens=cached, cache_creation_input_tokens=0)
        return {"id": "msg_mock", "type": "message", "role": "assistant",
                "model": body.get("model"), "content": content,
                "stop_reason": "tool_use" if call else "max_tokens" if cut else "end_turn",
                "stop_sequence": None, "usage": usage}
    if flavour == "gemini":
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "MAX_TOKENS" if cut else "STOP"}],
                "usageMetadata": {"promptTokenCount": tin, "candidatesTokenCount": tout},
                "modelVersion": "mock-gemini-001"}
    usage = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
    details: dict[str, Any] = usage
    if cached:
        details["prompt_tokens_details"] = {"cached_tokens": cached}
    if body.get("reasoning_effort"):
        details["completion_tokens_details"] = {"reasoning_tokens": 3}
    finish = "length" if cut else "stop"
    if flavour == "completions":
        return {"id": "cmpl-mock", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model"), "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": usage}
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if call is not None:
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_mock", "type": "function",
             "function": {"name": call[0], "arguments": json.dumps(call[1])}}]}
        finish = "tool_calls"
    choices = [{"index": 0, "message": message, "finish_reason": finish}]
    for i in range(1, int(body.get("n") or 1)):  # n samples: each its own deterministic text
        more, more_cut = truncate({**body, "choice": i})
        choices.append({"index": i, "message": {"role": "assistant", "content": more},
                        "finish_reason": "length" if more_cut else "stop"})
        usage["completion_tokens"] += _tokens(more)
        usage["total_tokens"] += _tokens(more)
    return {"id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"), "system_fingerprint": "fp_mock",
            "choices": choices, "usage": usage}


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def stream_frames(flavour: str, body: dict[str, Any]) -> list[bytes]:
    """The SSE frames of a streamed answer; their text joins to the non-streamed text."""
    full = answer(flavour, body)
    text, _ = truncate(body)
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if flavour == "anthropic":
        start = {**full, "content": [], "stop_reason": None,
                 "usage": {"input_tokens": full["usage"]["input_tokens"], "output_tokens": 1}}
        frames = [_sse({"type": "message_start", "message": start}, "message_start"),
                  _sse({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}, "content_block_start"),
                  _sse({"type": "ping"}, "ping")]
        frames += [_sse({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
                   for p in pieces]
        frames.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        for i, block in enumerate(b for b in full["content"] if b["type"] == "tool_use"):
            frames += [_sse({"type": "content_block_start", "index": i + 1,
                             "content_block": {**block, "input": {}}}, "content_block_start"),
                       _sse({"type": "content_block_delta", "index": i + 1,
                             "delta": {"type": "input_json_delta",
                                       "partial_json": json.dumps(block["input"])}},
                            "content_block_delta"),
                       _sse({"type": "content_block_stop", "index": i + 1},
                            "content_block_stop")]
        frames += [_sse({"type": "message_delta", "delta": {"stop_reason": full["stop_reason"],
                                                            "stop_sequence": None},
                         "usage": {"output_tokens": full["usage"]["output_tokens"]}},
                        "message_delta"),
                   _sse({"type": "message_stop"}, "message_stop")]
        return frames
    base = {"id": full["id"], "created": full["created"], "model": full["model"],
            "system_fingerprint": "fp_mock"}
    finish = full["choices"][0]["finish_reason"]
    chunks: list[dict[str, Any]]
    last: dict[str, Any]
    if flavour == "completions":
        obj = "text_completion"
        chunks = [{"index": 0, "text": p, "finish_reason": None} for p in pieces]
        last = {"index": 0, "text": "", "finish_reason": finish}
    else:
        obj = "chat.completion.chunk"
        calls = full["choices"][0]["message"].get("tool_calls")
        chunks = [{"index": 0, "delta": ({"role": "assistant", "content": p} if i == 0
                                         else {"content": p}), "finish_reason": None}
                  for i, p in enumerate(pieces if not calls else [])]
        chunks += [{"index": 0, "delta": {"tool_calls": [{**c, "index": i}]},
                    "finish_reason": None} for i, c in enumerate(calls or [])]
        last = {"index": 0, "delta": {}, "finish_reason": finish}
    frames = [_sse({**base, "object": obj, "choices": [c]}) for c in chunks]
    frames.append(_sse({**base, "object": obj, "choices": [last]}))
    if (body.get("stream_options") or {}).get("include_usage"):
        frames.append(_sse({**base, "object": obj, "choices": [], "usage": full["usage"]}))
    frames.append(_sse("[DONE]"))
    return frames
