"""The one place where what a server sent becomes values promptlab can store.

Servers that "speak" an API send content parts instead of strings, numbers as strings,
objects where a name belongs, lone UTF-16 surrogates in JSON escapes. Every provider (and
every stream parser) builds its ProviderResponse through `make_response`, so the results
table only ever sees: text as a str (valid UTF-8), labels as bounded str or None, token
counts as int32 or None. Parsing failures become a one-line `ProviderError`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from promptlab.errors import ProviderError
from promptlab.providers.base import ProviderResponse, ToolCall

__all__ = [
    "FINGERPRINT_CHARS",
    "FINISH_REASON_CHARS",
    "INT32_MAX",
    "MODEL_CHARS",
    "as_label",
    "as_text",
    "as_token_count",
    "describe",
    "load_json",
    "make_response",
    "make_tool_call",
]

# The sizes of the results columns they are stored in (store/models.py).
MODEL_CHARS = 500
FINISH_REASON_CHARS = 50
FINGERPRINT_CHARS = 200
INT32_MAX = 2**31 - 1  # token counts go to INTEGER columns

_DECODER = json.JSONDecoder()  # what json.loads uses when given no options
_DIGITS = re.compile(r"\s*([0-9]{1,12})\s*")
_SURROGATE = re.compile("[\ud800-\udfff]")


def make_response(text: Any, finish_reason: Any, input_tokens: Any, output_tokens: Any,
                  model: Any, fingerprint: Any = None, *, tool_calls: Any = (),
                  reasoning_tokens: Any = None, cached_input_tokens: Any = None,
                  cache_write_tokens: Any = None, reasoning: Any = None) -> ProviderResponse:
    """A ProviderResponse from raw values as parsed from JSON, each made storable.

    `tool_calls` are ToolCalls (from `make_tool_call`); `reasoning` is the text of
    reasoning summaries or thinking blocks (content parts are joined as for `text`)."""
    calls: tuple[ToolCall, ...] = () if not tool_calls else tuple(
        c for c in tool_calls if isinstance(c, ToolCall)) if isinstance(
        tool_calls, list | tuple) else ()
    return ProviderResponse(
        text=as_text(text),
        finish_reason=as_label(finish_reason, FINISH_REASON_CHARS),
        input_tokens=as_token_count(input_tokens),
        output_tokens=as_token_count(output_tokens),
        model=as_label(model, MODEL_CHARS),
        fingerprint=as_label(fingerprint, FINGERPRINT_CHARS),
        tool_calls=calls,
        reasoning_tokens=as_token_count(reasoning_tokens),
        cached_input_tokens=as_token_count(cached_input_tokens),
        cache_write_tokens=as_token_count(cache_write_tokens),
        reasoning=None if reasoning is None else (as_text(reasoning) or None),
    )


def make_tool_call(name: Any, arguments: Any, call_id: Any = None) -> ToolCall:
    """A storable ToolCall: the name as a label, arguments parsed when they are JSON text
    (kept as text when they are not: a model's broken JSON is a result, not a crash)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            arguments = _clean(arguments)
    elif arguments is None:
        arguments = {}
    try:
        json.dumps(arguments, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        arguments = describe(arguments)
    return ToolCall(name=as_label(name, MODEL_CHARS) or "", arguments=arguments,
                    id=as_label(call_id, FINGERPRINT_CHARS))


def as_text(value: Any) -> str:
    """Output text: a string as is; None as ''; content parts as their text joined.

    A list is read as content parts (OpenAI's ``{"type": "text", "text": ...}``, Anthropic's
    blocks, Gemini's ``{"text": ...}``, bare strings); parts that are not text (images,
    tool calls) are left out, but a list with no text part at all is kept as JSON text
    rather than lost. Anything else (objects, numbers, booleans) becomes JSON text.
    """
    if isinstance(value, str):
        return _clean(value)
    if value is None:
        return ""
    if isinstance(value, list):
        pieces = [p for p in (_part_text(part) for part in value) if p is not None]
        if pieces or not value:
            return _clean("".join(pieces))
    return _clean(_json(value))


def as_label(value: Any, limit: int) -> str | None:
    """A short name (model, finish reason, fingerprint): str within `limit`, or None.

    A non-string is kept as its JSON text, so a server's odd value is still visible; a
    longer one is cut with the store's visible marker (``…[612 chars]``)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else _json(value)
    if len(text) > limit:
        tail = f"…[{len(text)} chars]"
        text = text[:limit - len(tail)] + tail
    return _clean(text)


def as_token_count(value: Any) -> int | None:
    """A token count that fits an INTEGER column, or None.

    Accepts ints, integral floats (``5.0``) and decimal strings (``"5"``); None for
    booleans, negatives, fractions, NaN and infinities, and anything above 2**31-1."""
    if value is None:
        return None
    if type(value) is int:  # the common case, first
        return value if 0 <= value <= INT32_MAX else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        count = value
    elif isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            return None
        count = int(value)
    elif isinstance(value, str):
        match = _DIGITS.fullmatch(value)
        if match is None:
            return None
        count = int(match.group(1))
    else:
        return None
    return count if 0 <= count <= INT32_MAX else None


def load_json(body: bytes | str, what: str) -> Any:
    """Parse a body, or raise a transient ProviderError naming `what` and saying why."""
    try:
        # A body that opens an object is what json.loads would find UTF-8 (no BOM, no NUL
        # of UTF-16/32) and decode with "surrogatepass": done here without its checks.
        if isinstance(body, bytes):
            if body[:1] == b"{" and body[1:2] != b"\0":
                return _DECODER.decode(body.decode("utf-8", "surrogatepass"))
        elif body[:1] == "{":
            return _DECODER.decode(body)
        return json.loads(body)
    except UnicodeDecodeError as exc:  # a subclass of ValueError: check it first
        raise ProviderError(f"{what} is not valid {exc.encoding} text ({exc.reason} at byte "
                            f"{exc.start}): {_preview(body)}", "transient") from None
    except json.JSONDecodeError as exc:
        raise ProviderError(f"{what} is not JSON ({exc.msg} at char {exc.pos}): "
                            f"{_preview(body)}", "transient") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise ProviderError(f"{what} is not JSON ({str(exc)[:80]}): {_preview(body)}",
                            "transient") from None
    except RecursionError:
        raise ProviderError(f"{what} is nested too deeply to parse: {_preview(body)}",
                            "transient") from None


def describe(value: Any, limit: int = 120) -> str:
    """A parsed JSON value as one short line, for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (RecursionError, ValueError, TypeError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _part_text(part: Any) -> str | None:
    """The text of one content part, or None for a part that is not text."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict) or part.get("type", "text") != "text":
        return None
    text = part.get("text")
    if isinstance(text, dict):  # the Assistants API's {"value": ..., "annotations": [...]}
        text = text.get("value")
    return text if isinstance(text, str) else None


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return describe(value)


def _clean(text: str) -> str:
    """Lone surrogates (from JSON escapes such as "\\ud800") cannot be encoded as UTF-8,
    so no database would take the text: replace them with U+FFFD."""
    if text.isascii():  # O(1) in CPython: the string knows
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _preview(body: bytes | str) -> str:
    head = body[:80]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    return describe(text, 100) + (" ..." if len(body) > 80 else "")
