"""Per-endpoint limits: concurrency, requests and tokens per minute, and shared pauses.

An endpoint is what a provider bills and throttles: provider + base URL + API key
variable. Model aliases that share one share its limits, and a 429 pauses it for every
worker, not only the one that saw it. Waits are single injected `sleep` calls (no polling),
so tests run with a fake clock and no real waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from promptlab.spec import ModelSpec

__all__ = ["Endpoint", "EndpointLimits", "endpoint_key"]


def endpoint_key(model: ModelSpec) -> str:
    base = model.base_url or model.provider
    return f"{model.provider}|{base}|{model.api_key_env or ''}"


@dataclass(frozen=True)
class EndpointLimits:
    max_concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None

    def merge(self, other: EndpointLimits) -> EndpointLimits:
        """The stricter of two aliases' limits for one shared endpoint."""

        def low(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else min(a, b)

        mc = low(self.max_concurrency, other.max_concurrency)
        return EndpointLimits(int(mc) if mc is not None else None, low(self.rpm, other.rpm),
                              low(self.tpm, other.tpm))


class Endpoint:
    def __init__(self, key: str, limits: EndpointLimits, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.key = key
        self.limits = limits
        self.clock = clock
        self.sleep = sleep
        self._sem = asyncio.Semaphore(limits.max_concurrency) if limits.max_concurrency else None
        self._next_slot = 0.0
        self._tokens = float(limits.tpm or 0)
        self._tokens_at = clock()
        self.paused_until = 0.0
        self.pauses = 0
        self.stopped: str | None = None

    def pause(self, seconds: float) -> None:
        """Hold every request to this endpoint for `seconds` (a rate limit was hit)."""
        until = self.clock() + seconds
        if until > self.paused_until:
            self.paused_until = until
            self.pauses += 1

    async def acquire(self, est_tokens: int) -> None:
        wait = self.paused_until - self.clock()
        if wait > 0:
            await self.sleep(wait)
        if self.limits.rpm:
            now = self.clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 60.0 / self.limits.rpm
            if slot > now:
                await self.sleep(slot - now)
        if self.limits.tpm:
            now = self.clock()
            rate = self.limits.tpm / 60.0
            self._tokens = min(self.limits.tpm, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            need = min(est_tokens, self.limits.tpm)
            self._tokens -= need
            if self._tokens < 0:
                await self.sleep(-self._tokens / rate)
        if self._sem is not None:
            await self._sem.acquire()

    def release(self) -> None:
        if self._sem is not None:
            self._sem.release()
