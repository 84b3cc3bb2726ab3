"""The run's places across lanes (`slots.Sending`): a call its endpoint let through and
that then waited for a place waits out a pause that began meanwhile, takes a new `rpm`
turn for a stale one (no minute holds more than rpm sends), and leaks nothing when
cancelled. Written by an independent review of the lanes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from helpers import RealClock, ok_chat, run_with
from test_lanes import BOTH, _anthropic_ok

from promptlab.runner.endpoint import Endpoint, EndpointLimits
from promptlab.runner.slots import Sending


def test_a_call_let_through_before_a_pause_waits_it_out_for_its_place() -> None:
    async def main() -> float:
        ep = Endpoint("a", EndpointLimits(), time.monotonic, asyncio.sleep, ceiling=4)
        sending = Sending(1)
        await sending._places.acquire()  # another lane's call is being sent
        await ep.acquire(1)
        t0 = time.monotonic()
        task = asyncio.create_task(sending.take(ep))
        await asyncio.sleep(0.01)
        ep.pause(0.3)  # a 429 with the budget spent, meanwhile
        sending.give()  # the other lane's call ends
        await task
        return time.monotonic() - t0

    waited = asyncio.run(main())
    assert waited >= 0.29, waited


def test_cancelled_while_waiting_for_a_place_or_its_hold_off_leaks_nothing() -> None:
    async def main() -> None:
        ep = Endpoint("a", EndpointLimits(rpm=60), time.monotonic, asyncio.sleep, ceiling=4)
        sending = Sending(1)
        await sending._places.acquire()
        await ep.acquire(1)
        waiting = asyncio.create_task(sending.take(ep))  # waits for the place
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert ep.in_flight == 0
        sending.give()
        ep.sending()  # just sent: the next waits ~0.9 s
        ep._next_slot = 0
        await ep.acquire(1)
        holding_off = asyncio.create_task(sending.take(ep))
        await asyncio.sleep(0.01)
        holding_off.cancel()
        await asyncio.gather(holding_off, return_exceptions=True)
        assert ep.in_flight == 0 and sending._places._value == 1
        # cancelled just as it is handed the place
        await sending._places.acquire()
        ep._last_sent = None
        await ep.acquire(1)
        t = asyncio.create_task(sending.take(ep))
        await asyncio.sleep(0.01)
        sending.give()
        t.cancel()
        await asyncio.gather(t, return_exceptions=True)
        assert ep.in_flight == 0 and sending._places._value == 1

    asyncio.run(main())


SPACING = 0.02  # rpm 3000; "a minute" scaled to 60 spacings = 1.2 s


def test_no_window_of_a_minute_holds_more_than_rpm_sends() -> None:
    async def main() -> list[float]:
        ep = Endpoint("a", EndpointLimits(rpm=60 / SPACING), time.monotonic, asyncio.sleep,
                      ceiling=32)
        sending = Sending(32)
        sent: list[float] = []
        stop = time.monotonic() + 3.0

        async def blocker() -> None:  # another lane's slow calls: all 32 places, 0.7 s
            await sending._places.acquire()
            await asyncio.sleep(0.7)
            sending.give()

        async def worker() -> None:  # one of oa's lane's 32 slots
            while time.monotonic() < stop:
                await ep.acquire(1)
                await sending.take(ep)
                sent.append(time.monotonic())
                ep.release()
                sending.give()
                await asyncio.sleep(0)

        blockers = [asyncio.create_task(blocker()) for _ in range(32)]
        await asyncio.sleep(0)
        await asyncio.gather(*(worker() for _ in range(32)), *blockers)
        return sent

    sent = asyncio.run(main())
    window = 60 * SPACING
    most = max(sum(1 for t in sent if s <= t < s + window) for s in sent)
    assert most <= 61


def test_rpm_over_any_minute(project: Path) -> None:
    clock = RealClock()
    oa: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/messages"):
            await asyncio.sleep(0.7)  # real time
            return _anthropic_ok()
        oa.append(clock())
        return ok_chat()

    stats, _ = run_with(project, handler, "models=[an,oa]", *BOTH[1:], "grid.repeats=40",
                        "run.concurrency=32", "models.oa.rpm=3000", clock=clock)
    window = 1.2  # 60 turns at 3000/min: "a minute" of rpm 60
    most = max(sum(1 for t in oa if s <= t < s + window) for s in oa)
    assert most <= 61
