"""The one shared HTTP client: the httpx API over a transport chosen by measurement.

httpx's default connection pool slowed as concurrency grew (see benchmarks/); the aiohttp
transport for httpx kept pace, so it is the default. ``PROMPTLAB_TRANSPORT=httpx`` picks
httpx's own transport.
"""

from __future__ import annotations

import os

import httpx

__all__ = ["make_client"]


def make_client(concurrency: int, transport: str | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max(concurrency, 1) + 4,
                          max_keepalive_connections=max(concurrency, 1) + 4,
                          keepalive_expiry=30.0)
    choice = transport or os.environ.get("PROMPTLAB_TRANSPORT", "aiohttp")
    if choice == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False),
                                 timeout=None, trust_env=False)
    return httpx.AsyncClient(limits=limits, timeout=None, trust_env=False)
