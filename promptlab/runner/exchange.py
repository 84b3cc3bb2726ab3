"""One HTTP exchange: send a built request, read the reply (a stream line by line, timing
the first token), keep the raw bytes for the record."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from promptlab.providers.base import HttpRequest, Provider, ProviderResponse
from promptlab.runner.client import Sender

__all__ = ["Exchange", "exchange"]


@dataclass
class Exchange:
    """What came back, filled in as it arrives: on an error mid-stream the caller still
    has the status, headers and the raw events read so far."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    parsed: ProviderResponse | None = None  # set for a stream; plain bodies parse later
    ttft_ms: float | None = None


async def exchange(client: Sender, http: HttpRequest, timeout: float, provider: Provider,
                   stream: bool, t0: float, into: Exchange) -> None:
    """Send `http` and fill `into`; raises SendError, SendTimeout or ProviderError."""
    if not stream:
        reply = await client.send(http, timeout)
        into.status, into.headers, into.raw = reply.status, reply.headers, reply.body
        return
    async with client.stream(http, timeout) as resp:
        into.status, into.headers = resp.status, resp.headers
        if resp.status >= 300:
            into.raw = await resp.read()
            return
        parser = provider.stream_parser()
        lines: list[str] = []
        try:
            async for line in resp.lines():
                lines.append(line)
                if line.startswith("data:"):
                    delta = parser.feed(line[5:].strip())
                    if delta and into.ttft_ms is None:
                        into.ttft_ms = (time.perf_counter() - t0) * 1000
        finally:
            into.raw = "\n".join(lines).encode("utf-8")
        into.parsed = parser.result()
