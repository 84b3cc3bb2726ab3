"""Wire formats the mock server speaks: OpenAI chat and text completions, Anthropic
Messages and a Gemini-shaped ``generateContent``, as JSON bodies or SSE streams."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

__all__ = ["mock_reply", "prompt_text", "answer", "stream_frames", "truncate"]

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")


def prompt_text(body: dict[str, Any]) -> str:
    """The text a request asks about: the last user message, the prompt, or Gemini contents."""
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
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


def _input_tokens(body: dict[str, Any]) -> int:
    n = _tokens(str(body.get("system", ""))) if body.get("system") else 0
    if isinstance(body.get("prompt"), str):
        return n + _tokens(body["prompt"])
    if isinstance(body.get("contents"), list):
        return n + _tokens(prompt_text(body))
    return n + sum(_tokens(str(m.get("content", ""))) for m in body.get("messages") or [])


def answer(flavour: str, body: dict[str, Any]) -> dict[str, Any]:
    text, cut = truncate(body)
    tin, tout = _input_tokens(body), _tokens(text)
    if flavour == "anthropic":
        return {"id": "msg_mock", "type": "message", "role": "assistant",
                "model": body.get("model"), "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if cut else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": tin, "output_tokens": tout}}
    if flavour == "gemini":
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "MAX_TOKENS" if cut else "STOP"}],
                "usageMetadata": {"promptTokenCount": tin, "candidatesTokenCount": tout},
                "modelVersion": "mock-gemini-001"}
    usage = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
    finish = "length" if cut else "stop"
    if flavour == "completions":
        return {"id": "cmpl-mock", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model"), "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": usage}
    choices = [{"index": 0, "message": {"role": "assistant", "content": text},
                "finish_reason": finish}]
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
        frames += [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                   _sse({"type": "message_delta", "delta": {"stop_reason": full["stop_reason"],
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
        chunks = [{"index": 0, "delta": ({"role": "assistant", "content": p} if i == 0
                                         else {"content": p}), "finish_reason": None}
                  for i, p in enumerate(pieces)]
        last = {"index": 0, "delta": {}, "finish_reason": finish}
    frames = [_sse({**base, "object": obj, "choices": [c]}) for c in chunks]
    frames.append(_sse({**base, "object": obj, "choices": [last]}))
    if (body.get("stream_options") or {}).get("include_usage"):
        frames.append(_sse({**base, "object": obj, "choices": [], "usage": full["usage"]}))
    frames.append(_sse("[DONE]"))
    return frames
