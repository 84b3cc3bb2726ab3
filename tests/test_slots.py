"""Slots: run.concurrency counts calls being sent; a call waiting to retry lends its slot
to a spare worker and, done waiting, gets one back before the spares do."""

from __future__ import annotations

import asyncio
from pathlib import Path

from promptlab.runner.slots import Seat, Slots


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_n_slots_for_twice_as_many_workers() -> None:
    async def main() -> None:
        slots = Slots(3)
        assert slots.workers == 6
        seats = [slots.seat() for _ in range(slots.workers)]
        takers = [asyncio.ensure_future(s.take()) for s in seats]
        await settle()
        assert [s.held for s in seats] == [True] * 3 + [False] * 3
        seats[0].give()  # a finished worker leaving: the first spare takes over
        await settle()
        assert seats[3].held and not seats[4].held
        for t in takers:
            t.cancel()
        await asyncio.gather(*takers, return_exceptions=True)

    asyncio.run(main())


def test_a_call_done_waiting_goes_before_the_spares() -> None:
    async def main() -> None:
        slots = Slots(1)
        busy, waiting, spare = slots.seat(), slots.seat(), slots.seat()
        await waiting.take()
        spare_took = asyncio.ensure_future(spare.take())
        done_waiting = asyncio.Event()
        retry = asyncio.ensure_future(waiting.wait(done_waiting.wait()))
        await settle()
        assert spare.held and not waiting.held  # the slot went to the spare meanwhile
        busy_took = asyncio.ensure_future(busy.take())  # another spare, in line first
        await settle()
        done_waiting.set()
        await settle()
        assert not retry.done()  # no slot free yet
        # The spare finishes a call: its slot goes to the retry, and it waits as a spare.
        spare.between_calls(nothing_queued=False)  # ... and, with a call, waits as a spare
        spare_again = asyncio.ensure_future(spare.take())
        await settle()
        assert retry.done() and waiting.held and not spare.held
        assert not busy.held  # ... not to the spare that waited longer
        waiting.give()  # the retried call done: now the spare first in line
        await settle()
        assert busy.held and not spare.held
        for t in (spare_took, busy_took, spare_again):
            t.cancel()
        await asyncio.gather(spare_took, busy_took, spare_again, return_exceptions=True)

    asyncio.run(main())


def test_with_no_call_waiting_a_worker_keeps_its_slot_without_waiting() -> None:
    async def main() -> None:
        slots = Slots(2)
        seat = slots.seat()
        await seat.take()
        spares = [slots.seat() for _ in range(3)]
        waits = [asyncio.ensure_future(s.take()) for s in spares]
        await settle()
        loop = asyncio.get_running_loop()
        before = loop.create_future  # between_calls must not make a waiter
        made: list[object] = []
        loop.create_future = lambda: made.append(1) or before()  # type: ignore[method-assign]
        try:
            for _ in range(100):
                seat.between_calls(nothing_queued=False)
                await seat.take()
        finally:
            loop.create_future = before  # type: ignore[method-assign]
        assert seat.held and made == []
        assert [s.held for s in spares] == [True, False, False]
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)

    asyncio.run(main())


def test_a_worker_waiting_for_the_queue_holds_no_slot() -> None:
    """Workers idle before a call comes back from its wait (the feeder waits for a
    budget, nothing is queued): the call done waiting gets a slot at once."""
    async def main() -> None:
        slots = Slots(2)
        worker, waiting = slots.seat(), slots.seat()
        await worker.take()
        await waiting.take()
        back = asyncio.Event()
        retry = asyncio.ensure_future(waiting.wait(back.wait()))
        await settle()
        worker.between_calls(nothing_queued=True)  # its call done, the queue empty
        assert not worker.held
        back.set()
        await settle()
        assert retry.done() and waiting.held
        worker.between_calls(nothing_queued=False)
        await worker.take()  # a call queued at last: the other slot is free for it
        assert worker.held

    asyncio.run(main())


def test_a_cancelled_waiter_loses_no_slot() -> None:
    async def main() -> None:
        slots = Slots(1)
        holder, gone, next_one = Seat(slots), Seat(slots), Seat(slots)
        await holder.take()
        gone_task = asyncio.ensure_future(gone.take())
        next_task = asyncio.ensure_future(next_one.take())
        await settle()
        gone_task.cancel()  # Ctrl-C while waiting for a slot
        await asyncio.gather(gone_task, return_exceptions=True)
        holder.give()
        await settle()
        assert next_task.done() and next_one.held and not gone.held
        # Cancelled just as it was handed the slot: the slot goes on, not lost.
        late = Seat(slots)
        late_task = asyncio.ensure_future(late.take())
        await settle()
        next_one.give()  # hands the slot to `late` ...
        late_task.cancel()  # ... which is cancelled before it runs
        await asyncio.gather(late_task, return_exceptions=True)
        last = Seat(slots)
        await asyncio.wait_for(last.take(), 1)
        assert last.held

    asyncio.run(main())


def test_calls_go_out_in_the_order_the_workers_took_them(project: Path) -> None:
    """A spare worker took a call, then waited for a slot that the workers sending kept
    while calls were queued: calls 4-7 of 60 went out last (an adversarial review). Sent
    order may differ from plan order only within a round of workers."""
    import json

    import httpx
    from helpers import ok_chat, run_with

    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["messages"][-1]["content"])
        await asyncio.sleep(0.001)  # (real time: the workers overlap)
        return ok_chat()

    many = project / "data/many.jsonl"
    many.write_text("".join(json.dumps({"id": f"r{i:03d}", "country": f"C{i:03d}"}) + "\n"
                            for i in range(60)))
    stats, _ = run_with(project, handler, "models=[oa]", "prompts=[plain]",
                        "grid.params.temperature=[0]", "grid.params.top_p=[1]",
                        "dataset.path=data/many.jsonl", "run.concurrency=4")
    assert stats.ok == 60
    order = [int(text.split("C")[1][:3]) for text in sent]
    assert max(abs(i - position) for position, i in enumerate(order)) <= 8, order
