"""The run's concurrency counts calls being sent, not calls waiting to be tried again.

A call that must wait before its next try (a 429's Retry-After, a 5xx's backoff) gives its
slot to a spare worker while it waits, and takes one again to retry. The runner keeps
`run.concurrency` slots and twice as many workers: a worker holds a slot from taking a
call to finishing it, except while the call waits; a spare (a worker with no slot, calls
queued) waits for one, then takes the next call. A call done waiting goes first, and so
does a call a worker took from an empty queue: the next worker to finish a call hands it
its slot. A worker waiting for the queue holds no slot (`Seat.next_call`). Before, a
waiting call held its worker, so when a round's 429s outnumbered the workers nothing was
sent for a whole Retry-After (benchmarks/README.md: a server capped at 300/s was met at
0.88-0.91 of the cap, the rest of the time spent with nothing in flight; now ~0.93).

With calls queued and none done waiting, a worker keeps its slot from one call to the
next: the slots cost the event loop nothing per call.

Each endpoint's lane has its own slots (`Runner._lane`): its calls wait for their
endpoint holding theirs, and hold up no other endpoint's. `run.concurrency` still bounds
the run's calls being sent, across lanes (`Sending`): a call takes one of those places
only once its endpoint let it through, for its exchange.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from promptlab.runner.endpoint import Endpoint

__all__ = ["Seat", "Sending", "Slots"]

T = TypeVar("T")


class Slots:
    """`n` slots for calls being sent, handed out first to calls done waiting, then to spare
    workers; `workers` is how many workers to start, `seat()` one worker's hold."""

    def __init__(self, n: int) -> None:
        self.workers = 2 * n
        self._free = n
        self._returning: deque[asyncio.Future[None]] = deque()  # calls done waiting
        self._spares: deque[asyncio.Future[None]] = deque()

    def seat(self) -> Seat:
        return Seat(self)

    @property
    def wanted(self) -> bool:
        """A call done waiting wants a slot: the next worker to finish a call gives its own."""
        return bool(self._returning)

    def _give(self) -> None:
        for line in (self._returning, self._spares):
            while line:
                waiter = line.popleft()
                if not waiter.done():  # (a cancelled waiter is skipped)
                    waiter.set_result(None)
                    return
        self._free += 1

    async def _take(self, returning: bool) -> None:
        if self._free and not (self._returning if returning else
                               (self._returning or self._spares)):
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        (self._returning if returning else self._spares).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot as it was cancelled
                self._give()
            raise


class Seat:
    """One worker's hold on a slot."""

    __slots__ = ("_slots", "held")

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self.held = False

    async def take(self) -> None:
        """A slot, as a spare worker waits for one (nothing when held already)."""
        if not self.held:
            await self._slots._take(returning=False)
            self.held = True

    def give(self) -> None:
        """Give the slot up (nothing when not held: a worker's `finally` may repeat it)."""
        if self.held:
            self.held = False
            self._slots._give()

    def between_calls(self, nothing_queued: bool) -> None:
        """Between calls: give the slot up when a call done waiting wants it or when there
        is no call to take. A worker waiting for the queue holds none: a run whose feeder
        waits for calls to finish (run.max_cost_usd) would otherwise keep every slot from
        a call done waiting, for ever. The worker takes one (`take`) once it has a call."""
        if nothing_queued or self._slots.wanted:
            self.give()

    async def next_call(self, queue: asyncio.Queue[T]) -> T:
        """The next call from `queue`, and a slot to send it. With calls queued: a slot
        first, then the call; with none: the call, then a slot, ahead of the spares. A
        worker never waits for the queue holding a slot (`between_calls`), nor for a slot
        holding a call while the workers sending take calls queued after it (calls 4-7 of
        60 went out last at concurrency 4)."""
        while True:
            self.between_calls(queue.empty())
            if queue.empty():
                call = await queue.get()
                await self._slots._take(returning=True)
                self.held = True
                return call
            await self.take()
            if not queue.empty():  # (else the calls went meanwhile: wait without the slot)
                return queue.get_nowait()

    async def wait(self, sleep: Awaitable[None]) -> None:
        """Await `sleep` without the slot (a spare sends meanwhile), then take one again,
        ahead of the spares."""
        self.give()
        await sleep
        await self._slots._take(returning=True)
        self.held = True


class Sending:
    """The run's calls being sent, across its lanes: `n` at most, first come first served.
    Taken by a call its endpoint let through, given back when its exchange ends. A call
    that waited for one may find its turn gone stale: it waits out a pause of its endpoint
    that began meanwhile, and a new `rpm` turn, without the place (else the calls of a
    paced endpoint held up by another lane's went out together, over the rate)."""

    def __init__(self, n: int) -> None:
        self._places = asyncio.Semaphore(n)

    async def take(self, endpoint: Endpoint) -> bool:
        """A place, for a call `endpoint` let through; False, with none, if the endpoint
        stopped meanwhile (an auth failure). Its place there is given back if cancelled."""
        turn = endpoint.turn  # the one `acquire` just gave this call
        try:
            while endpoint.stopped is None:
                await self._places.acquire()
                wait, turn = endpoint.hold_off(turn)
                if wait <= 0 and endpoint.stopped is None:
                    endpoint.sending()
                    return True
                self._places.release()
                if wait > 0:
                    await endpoint.sleep(wait)
            return False
        except asyncio.CancelledError:
            endpoint.release()
            raise

    def give(self) -> None:
        self._places.release()
