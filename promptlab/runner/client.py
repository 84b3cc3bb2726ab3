"""The network seam: a `Sender` sends a built request and returns status, headers, body.

Two implementations. `AiohttpSender` (the default) speaks through one aiohttp session with
a keep-alive pool sized to the run's concurrency. `HttpxSender` wraps any
`httpx.AsyncClient`, so tests can inject `httpx.MockTransport` and users can bring their own
client (proxies, certificates). Measured on this 2-core machine against the mock server,
10,000 POSTs at 64 in flight: httpx over its aiohttp transport 1,452 req/s at 689 us of
client CPU per request; aiohttp alone 3,338 req/s at 290 us (httpx's default pool: 138
calls/s through the whole runner). The framework's per-call budget is about 1 ms, so the
default sends through aiohttp directly. ``PROMPTLAB_TRANSPORT=httpx`` picks httpx.

Neither library is imported until something is sent: aiohttp (about 0.1 s of start-up, with
the TLS contexts it builds on import) loads when an `AiohttpSender` opens its session, at its
first request, and httpx only with an `HttpxSender` or `PROMPTLAB_TRANSPORT=httpx`. A run
whose every call the cache answers, `plan`, `report` and `runs` load neither.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from promptlab.providers.base import HttpRequest

if TYPE_CHECKING:
    import aiohttp
    import httpx

__all__ = ["Reply", "SendError", "SendTimeout", "Sender", "StreamReply", "AiohttpSender",
           "HttpxSender", "as_sender", "make_sender"]


class SendError(Exception):
    """The connection failed, dropped, or the body was cut off: transient."""


class SendTimeout(SendError):
    """No (complete) answer within the timeout: transient."""


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class StreamReply(Protocol):
    status: int
    headers: Mapping[str, str]

    def lines(self) -> AsyncIterator[str]: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it comes, no size cap (a batch result file may be gigabytes): the
        reader bounds what it keeps."""
        ...

    async def read(self) -> bytes: ...


class Sender(Protocol):
    async def send(self, request: HttpRequest, timeout: float) -> Reply: ...

    def stream(self, request: HttpRequest,
               timeout: float) -> contextlib.AbstractAsyncContextManager[StreamReply]: ...

    async def aclose(self) -> None: ...


# The most of one reply promptlab reads (after decompression): a server that sends more,
# or a gzip bomb, is a recorded error, not a run that fills the memory and the disk.
MAX_BODY_BYTES = 64 * 1024 * 1024
# A stream may go on for this many times the call timeout in all (each read is bounded by
# the timeout itself): a server that trickles forever cannot hold a run open.
STREAM_TOTAL_FACTOR = 10


def _aiohttp_errors() -> tuple[type[BaseException], ...]:
    """What aiohttp raises for a failed, dropped or malformed reply (imports aiohttp)."""
    import aiohttp

    return (aiohttp.ClientError, ConnectionError, aiohttp.http_exceptions.HttpProcessingError,
            ValueError)


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    """The whole body, at most MAX_BODY_BYTES of it (after decompression).

    A plain body with a Content-Length is read in one go: aiohttp's parser stops at that
    length (a shorter body fails as cut off, a longer one as a bad next message), so it
    cannot grow past the cap. A compressed body (its length is the compressed size) or one
    without a length is read chunk by chunk and counted."""
    length = resp.content_length
    headers = resp.headers
    if (length is not None and "content-encoding" not in headers
            and "transfer-encoding" not in headers):
        if length > MAX_BODY_BYTES:
            raise SendError(f"reply over {MAX_BODY_BYTES >> 20} MB (decompressed); "
                            "not read further")
        return await resp.content.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise SendError(f"reply over {MAX_BODY_BYTES >> 20} MB (decompressed); "
                            "not read further")
        chunks.append(chunk)
    return b"".join(chunks)


class _LowerHeaders(Mapping[str, str]):
    """A reply's headers as a dict with lower-case names (the last of repeated names wins),
    built on first use: the runner reads them only for a failed or redirected call."""

    __slots__ = ("_raw", "_dict")

    def __init__(self, raw: Mapping[str, str]) -> None:
        self._raw = raw
        self._dict: dict[str, str] | None = None

    def _lower(self) -> dict[str, str]:
        if self._dict is None:
            self._dict = {k.lower(): v for k, v in self._raw.items()}
        return self._dict

    def __getitem__(self, name: str) -> str:
        return self._lower()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lower())

    def __len__(self) -> int:
        return len(self._lower())

    def __repr__(self) -> str:
        return repr(self._lower())


class _AiohttpStream:
    def __init__(self, resp: aiohttp.ClientResponse,
                 errors: tuple[type[BaseException], ...]) -> None:
        self._resp = resp
        self._errors = errors  # _aiohttp_errors(), from the sender
        self.status = resp.status
        self.headers: Mapping[str, str] = _LowerHeaders(resp.headers)

    async def lines(self) -> AsyncIterator[str]:
        size = 0
        try:
            async for raw in self._resp.content:
                size += len(raw)
                if size > MAX_BODY_BYTES:
                    raise SendError(f"stream over {MAX_BODY_BYTES >> 20} MB; not read further")
                yield raw.decode("utf-8", "replace").rstrip("\r\n")
        except self._errors as exc:  # LineTooLong: one event line over aiohttp's limit
            raise SendError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except TimeoutError:
            raise SendTimeout("timeout mid-stream") from None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_chunked(1 << 16):
                yield chunk
        except self._errors as exc:
            raise SendError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except TimeoutError:
            raise SendTimeout("timeout mid-stream") from None

    async def read(self) -> bytes:
        try:
            return await _read_bounded(self._resp)
        except self._errors as exc:
            raise SendError(f"{type(exc).__name__}: {str(exc)[:200]}") from None


class AiohttpSender:
    """One aiohttp session with a keep-alive pool; opened, and aiohttp imported, by the first
    request (a run whose every call the cache answers never opens it)."""

    def __init__(self, concurrency: int) -> None:
        self._limit = max(concurrency, 1) + 4
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}  # one per call timeout
        self._stream_timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        self._aiohttp = aiohttp
        self._errors = _aiohttp_errors()
        connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=30.0)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                              auto_decompress=True)
        return self._session

    async def send(self, request: HttpRequest, timeout: float) -> Reply:
        session = self._session or self._open()
        limit = self._timeouts.get(timeout)
        if limit is None:
            limit = self._timeouts[timeout] = self._aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(
                    request.method, request.url, data=request.body, headers=request.headers,
                    timeout=limit,
                    allow_redirects=False) as resp:  # a redirect would carry the key along
                body = await _read_bounded(resp)
                return Reply(resp.status, _LowerHeaders(resp.headers), body)
        except TimeoutError:
            raise SendTimeout(f"timeout after {timeout:g}s") from None
        except self._errors as exc:
            raise SendError(f"{type(exc).__name__}: {str(exc)[:200]}") from None

    @contextlib.asynccontextmanager
    async def stream(self, request: HttpRequest, timeout: float) -> AsyncIterator[StreamReply]:
        session = self._session or self._open()
        aiohttp = self._aiohttp
        limit = self._stream_timeouts.get(timeout)
        if limit is None:
            limit = self._stream_timeouts[timeout] = aiohttp.ClientTimeout(
                total=timeout * STREAM_TOTAL_FACTOR, sock_read=timeout, sock_connect=timeout)
        try:
            async with session.request(
                    request.method, request.url, data=request.body, headers=request.headers,
                    timeout=limit, allow_redirects=False) as resp:
                yield _AiohttpStream(resp, self._errors)
        except TimeoutError:
            raise SendTimeout(f"timeout after {timeout:g}s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _HttpxStream:
    def __init__(self, resp: httpx.Response) -> None:
        import httpx

        self._httpx = httpx
        self._resp = resp
        self.status = resp.status_code
        self.headers: Mapping[str, str] = resp.headers

    async def lines(self) -> AsyncIterator[str]:
        httpx = self._httpx
        try:
            async for line in self._resp.aiter_lines():
                yield line
        except httpx.TimeoutException:
            raise SendTimeout("timeout mid-stream") from None
        except httpx.TransportError as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None

    async def chunks(self) -> AsyncIterator[bytes]:
        async for line in self.lines():  # httpx's line reader has no cap
            yield line.encode() + b"\n"

    async def read(self) -> bytes:
        return await self._resp.aread()


class HttpxSender:
    """Any httpx.AsyncClient (its transport decides how requests travel)."""

    def __init__(self, client: httpx.AsyncClient, owned: bool = False) -> None:
        import httpx

        self._httpx = httpx
        self.client = client
        self._owned = owned

    async def send(self, request: HttpRequest, timeout: float) -> Reply:
        httpx = self._httpx
        try:
            resp = await self.client.request(request.method, request.url, content=request.body,
                                             headers=request.headers, timeout=timeout)
        except httpx.TimeoutException:
            raise SendTimeout(f"timeout after {timeout:g}s") from None
        except httpx.TransportError as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None
        return Reply(resp.status_code, resp.headers, resp.content)

    @contextlib.asynccontextmanager
    async def stream(self, request: HttpRequest, timeout: float) -> AsyncIterator[StreamReply]:
        httpx = self._httpx
        try:
            async with self.client.stream(request.method, request.url, content=request.body,
                                          headers=request.headers, timeout=timeout) as resp:
                yield _HttpxStream(resp)
        except httpx.TimeoutException:
            raise SendTimeout(f"timeout after {timeout:g}s") from None
        except httpx.TransportError as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()


def make_sender(concurrency: int, transport: str | None = None) -> Sender:
    choice = transport or os.environ.get("PROMPTLAB_TRANSPORT", "aiohttp")
    if choice == "httpx":
        import httpx
        from httpx_aiohttp import AiohttpTransport

        limits = httpx.Limits(max_connections=concurrency + 4,
                              max_keepalive_connections=concurrency + 4)
        client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False),
                                   timeout=None, trust_env=False)
        return HttpxSender(client, owned=True)
    return AiohttpSender(concurrency)


def as_sender(client: Any, concurrency: int) -> tuple[Sender, bool]:
    """The sender for an injected client (an httpx.AsyncClient or a Sender), or a new one.
    Returns it and whether the runner owns (and so closes) it."""
    if client is None:
        return make_sender(concurrency), True
    # An httpx.AsyncClient exists only once httpx is imported: no need to import it to ask.
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(client, httpx.AsyncClient):
        return HttpxSender(client), False
    return client, False
