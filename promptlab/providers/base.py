"""The provider seam: pure translation between promptlab's neutral request and one API.

A provider builds the HTTP request and parses the response; it never does I/O. The runner
sends, times, retries and records. `classify` answers the one policy question the runner
asks of a failure: is it a rate limit, transient, an auth failure, or fatal?
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from promptlab.spec import ModelSpec

__all__ = [
    "ErrorKind",
    "HttpRequest",
    "Provider",
    "ProviderRequest",
    "ProviderResponse",
    "StreamParser",
    "BatchItem",
    "BatchLines",
    "has_batch_api",
    "ToolCall",
    "base_headers",
    "classify_status",
    "dumps",
]

ErrorKind = Literal["rate_limit", "transient", "auth", "fatal"]


# What json.dumps(value, separators=(",", ":"), ...) builds on every call, built once.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """Compact JSON bytes for a request body (UTF-8, non-ASCII kept as is)."""
    text = _COMPACT.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a dataset's "\ud800" escape) has no UTF-8 form; JSON's
        # \u escapes carry it to the server unchanged.
        return _COMPACT_ASCII.encode(value).encode("ascii")


@dataclass(frozen=True)
class ToolCall:
    """One call a model asked for: the tool's name and its arguments (parsed JSON where the
    server sent JSON text, else the text as is), with the server's id for the call."""

    name: str
    arguments: Any
    id: str | None = None


@dataclass(frozen=True)
class ProviderRequest:
    """What to send, provider-neutral. `messages` contents are text, or content parts
    (``{"type": "text", "text": ...}``, ``{"type": "image", "url": ...}``). `tools` are
    ``{name, description, parameters}``; `tool_choice` is auto, none, required or a tool
    name; `response_format` is Chat Completions' form (see providers/tools.py)."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = None
    response_format: Any = None


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    secret_headers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProviderResponse:
    """What a call answered, every field storable as is.

    Providers build it with `normalize.make_response`: text is a str (valid UTF-8); the
    labels fit their columns (model 500, finish_reason 50, fingerprint 200 characters);
    token counts are ints from 0 to 2**31-1, or None when unknown."""

    text: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None
    fingerprint: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None  # input read from the provider's prompt cache
    cache_write_tokens: int | None = None   # input written to it (Anthropic)
    reasoning: str | None = None  # reasoning summaries / thinking blocks, apart from text


@functools.lru_cache(maxsize=1024)  # a run builds the same few URLs again and again
def api_url(base: str, path: str) -> str:
    """`path` appended to the base URL's path, keeping the base's query string where it
    is (Azure's ``?api-version=...``) and joining any query the path brings."""
    path, _, path_query = path.partition("?")
    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, path_query) if q)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, query=query,
                                     fragment=""))


class StreamParser(Protocol):
    """Reads a server-sent-event stream one ``data:`` payload at a time."""

    def feed(self, data: str) -> str:
        """Take one event's data; return the text it adds ('' for none).

        Raises ProviderError for an error event (e.g. Anthropic's overloaded_error)."""
        ...

    def result(self) -> ProviderResponse:
        """The assembled response, as the non-streaming call would have returned it.

        Raises ProviderError (transient) when the stream ended before it was complete."""
        ...


class Provider(Protocol):
    name: str
    default_base_url: str

    def stream_parser(self) -> StreamParser: ...

    def build_request(self, model: ModelSpec, request: ProviderRequest,
                      api_key: str | None) -> HttpRequest: ...

    def parse_response(self, model: ModelSpec, status: int, body: bytes) -> ProviderResponse:
        """Parse a 2xx body; raise ProviderError for a body that makes no sense."""
        ...

    def classify(self, model: ModelSpec, status: int, body: bytes) -> ErrorKind: ...


def classify_status(status: int) -> ErrorKind:
    """The common HTTP reading of a failed status."""
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 408 or status >= 500:
        return "transient"
    return "fatal"


def base_headers(model: ModelSpec) -> dict[str, str]:
    """The JSON defaults and the model's configured headers, names in lower case.

    Header names are case-insensitive: lower-casing them lets a configured
    ``Content-Type`` replace the default instead of going out as a second header."""
    headers = {"content-type": "application/json", "accept": "application/json"}
    headers.update((name.lower(), value) for name, value in model.headers)
    return headers


# -- batch APIs ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One line of a batch's results, read: the answer, or why there is none.

    `error_kind` is the provider's word ("errored", "expired", "canceled", or an error
    code); `retryable` says whether the same request may be sent again in a new batch."""

    custom_id: str
    response: ProviderResponse | None
    status_code: int | None = None
    error_kind: str | None = None
    error: str | None = None
    retryable: bool = False


class BatchLines(Protocol):
    """A provider with a batch API: one built request becomes one line of a batch, and one
    line of the results becomes a `BatchItem`. Pure translation, like the rest."""

    batch_api: str  # which batch API: "openai" (files + /batches) or "anthropic"

    def batch_line(self, model: ModelSpec, http: HttpRequest,
                   custom_id: str) -> dict[str, Any]: ...

    def parse_batch_result(self, model: ModelSpec, line: dict[str, Any]) -> BatchItem: ...


def has_batch_api(provider: object) -> bool:
    return callable(getattr(provider, "batch_line", None)) and isinstance(
        getattr(provider, "batch_api", None), str)
