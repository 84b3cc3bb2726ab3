"""The OpenAI Responses API as the mock speaks it (``POST /v1/responses``): a Response
object, or its typed SSE events, shaped so the official ``openai`` SDK accepts them.

The text is the same deterministic reply as every other flavour (`mock_wire.truncate`,
``max_output_tokens`` as the limit); tools, cached tokens and reasoning follow the rules
in `mock_wire`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from promptlab.testing.mock_wire import cached_tokens, input_tokens, tool_call, truncate

__all__ = ["response_answer", "response_frames", "response_error_frame"]


def response_answer(body: dict[str, Any]) -> dict[str, Any]:
    limited = {**body, "max_tokens": body.get("max_output_tokens")}
    limited.pop("max_output_tokens", None)
    text, cut = truncate(limited)
    tin, tout = input_tokens(body), max(1, len(text.split()))
    output: list[dict[str, Any]] = []
    reasoning = 0
    if body.get("reasoning"):
        reasoning = 3
        output.append({"type": "reasoning", "id": "rs_mock", "summary": [
            {"type": "summary_text", "text": "mock reasoned briefly"}]})
    call = tool_call(body)
    if call is not None:
        output.append({"type": "function_call", "id": "fc_mock", "call_id": "call_mock",
                       "name": call[0], "arguments": json.dumps(call[1]),
                       "status": "completed"})
    else:
        output.append({"type": "message", "id": "msg_mock", "status": "completed",
                       "role": "assistant", "content": [
                           {"type": "output_text", "text": text, "annotations": []}]})
    return {
        "id": "resp_mock", "object": "response", "created_at": int(time.time()),
        "status": "incomplete" if cut and call is None else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut and call is None
        else None,
        "error": None, "instructions": body.get("instructions"),
        "model": body.get("model"), "output": output, "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "reasoning": body.get("reasoning"), "metadata": {},
        "max_output_tokens": body.get("max_output_tokens"),
        "usage": {"input_tokens": tin,
                  "input_tokens_details": {"cached_tokens": cached_tokens(body)},
                  "output_tokens": tout + reasoning,
                  "output_tokens_details": {"reasoning_tokens": reasoning},
                  "total_tokens": tin + tout + reasoning},
    }


def _sse(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def response_frames(body: dict[str, Any]) -> list[bytes]:
    """created, in_progress, the output items (text as deltas), then completed."""
    full = response_answer(body)
    start = {**full, "status": "in_progress", "output": [], "usage": None,
             "incomplete_details": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": start},
                                    {"type": "response.in_progress", "response": start}]
    for index, item in enumerate(full["output"]):
        events.append({"type": "response.output_item.added", "output_index": index,
                       "item": ({**item, "content": [], "status": "in_progress"}
                                if item["type"] == "message" else item)})
        if item["type"] == "message":
            text = item["content"][0]["text"]
            words = text.split(" ")
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append({"type": "response.content_part.added", **where, "part": part})
            events += [{"type": "response.output_text.delta", **where, "logprobs": [],
                        "delta": w if i == 0 else " " + w} for i, w in enumerate(words)]
            events += [{"type": "response.output_text.done", **where, "logprobs": [],
                        "text": text},
                       {"type": "response.content_part.done", **where,
                        "part": item["content"][0]}]
        events.append({"type": "response.output_item.done", "output_index": index,
                       "item": item})
    final = "response.incomplete" if full["status"] == "incomplete" else "response.completed"
    events.append({"type": final, "response": full})
    return [_sse({**e, "sequence_number": n}) for n, e in enumerate(events)]


def response_error_frame(sequence_number: int) -> bytes:
    """The ``error`` event a Responses stream sends when it fails mid-way."""
    return _sse({"type": "error", "code": "server_error", "message": "The server had an "
                 "error while processing your request", "param": None,
                 "sequence_number": sequence_number})
