"""The run's concurrency counts calls being sent, not calls waiting to be tried again.

A call that must wait before its next try (a 429's Retry-After, a 5xx's backoff) gives its
slot to the next call while it waits, and takes one again to retry. The runner keeps
twice `run.concurrency` workers and `run.concurrency` slots: a worker holds a slot from
taking a call to finishing it, except while the call waits. Before, a waiting call held its
worker: when a round's 429s outnumbered the workers, nothing was sent for a whole
Retry-After (benchmarks/README.md: a server capped at 300/s was met at 0.88-0.91 of the
cap, the rest of the time spent waiting with nothing in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

__all__ = ["Seat", "Slots", "SPARE_WORKERS"]

SPARE_WORKERS = 1.0  # workers beyond the slots, as a share of them: calls that can wait


class Seat:
    """One worker's hold on a slot: taken, given up while its call waits, taken again."""

    __slots__ = ("_slots", "held")

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self.held = False

    async def take(self) -> None:
        await self._slots.acquire()
        self.held = True

    def give(self) -> None:
        """Give the slot up (nothing when not held: a worker's `finally` may repeat it)."""
        if self.held:
            self.held = False
            self._slots.release()

    async def wait(self, sleep: Awaitable[None]) -> None:
        """Await `sleep` without the slot, then take one again."""
        self.give()
        await sleep
        await self.take()


class Slots:
    """`n` slots for calls being sent; `seat()` gives a worker its hold on one."""

    def __init__(self, n: int) -> None:
        self._slots = asyncio.Semaphore(n)
        self.workers = n + max(1, round(n * SPARE_WORKERS))

    def seat(self) -> Seat:
        return Seat(self._slots)
