"""An endpoint's concurrency adapts to 429s as TCP's window does, and paces below one.

Driven by hand with a fake clock: `send` takes a slot as the runner does, `done` gives
it back with the answer the server gave (a 429 is reported after the slot is released,
as in the runner).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from helpers import FakeClock

from promptlab.runner.endpoint import BETA, Endpoint, EndpointLimits


def endpoint(ceiling: int, clock: FakeClock | None = None) -> Endpoint:
    clock = clock or FakeClock()
    return Endpoint("openai|x|", EndpointLimits(), clock, clock.sleep, ceiling)


def send(e: Endpoint, n: int = 1) -> list[int]:
    async def go() -> list[int]:  # a slot that never comes fails the test, not hangs it
        return [await asyncio.wait_for(e.acquire(10), 5) for _ in range(n)]
    return asyncio.run(go())


def ok(e: Endpoint) -> None:
    e.release()
    e.answered()


def too_many(e: Endpoint, seq: int, wait: float = 1.0, spent: bool = False,
             reset: float | None = None) -> bool:
    e.release()
    return e.rate_limited(seq, wait, spent, reset)


def paced_429(e: Endpoint, clock: FakeClock) -> tuple[int, bool]:
    """Ten requests one at a time, 10 ms apart (100 a second), then one more that gets a
    429: its sequence number and what `rate_limited` said."""
    for _ in range(10):
        send(e)
        ok(e)
        clock.now += 0.01
    [seq] = send(e)
    return seq, too_many(e, seq)


def test_a_429_halves_the_requests_in_flight_once_per_round() -> None:
    e = endpoint(8)
    seqs = send(e, 8)
    assert e.limit == 8
    assert too_many(e, seqs[0]) is False  # the request waits alone: no pause
    assert e.limit == 4
    assert e.paused_until == 0
    for seq in seqs[1:]:  # sent before the cut: the same round, no second cut
        too_many(e, seq)
    assert e.limit == 4
    [after] = send(e)  # sent after the cut: its 429 cuts again
    too_many(e, after)
    assert e.limit == 1  # half of the one in flight, floored at one ...
    assert e.pace() is not None  # ... and the requests paced


def test_the_cut_halves_what_is_in_flight_not_an_unused_limit() -> None:
    e = endpoint(10)
    e.limit = 10.0
    seqs = send(e, 6)
    too_many(e, seqs[0])
    assert e.limit == 3


def test_a_few_429s_in_a_wide_round_are_tolerated_a_tenth_of_it_cuts() -> None:
    e = endpoint(64)
    seqs = send(e, 64)
    for seq in seqs[:6]:  # a provider's random 429s: six of a round of 64
        too_many(e, seq)
    assert e.limit == 64
    too_many(e, seqs[6])  # the seventh is a tenth of the round: too many
    assert e.limit == 29  # half of the 57 still in flight and this one


def test_a_round_without_a_cut_counts_its_429s_afresh() -> None:
    e = endpoint(20)
    for _ in range(5):  # each round: 20 sent, one 429 and 19 answers
        seqs = send(e, 20)
        too_many(e, seqs[0])
        for _ in seqs[1:]:
            ok(e)
    assert e.limit == 20  # two a round would cut; one a round never does


def test_answers_grow_the_limit_by_one_over_the_limit_up_to_the_ceiling() -> None:
    e = endpoint(4)
    seqs = send(e, 4)
    too_many(e, seqs[0])
    for _ in seqs[1:]:
        e.release()
    assert e.limit == 2
    limits = []
    for _ in range(12):  # the limit in full use each time: one answer frees one slot
        while e.in_flight < int(e.limit):
            send(e)
        ok(e)
        limits.append(round(e.limit, 3))
    assert limits[:3] == [2.5, 2.9, 3.245]  # + 1/2, + 1/2.5, + 1/2.9
    assert limits[-1] == 4.0  # never past the ceiling
    assert max(limits) == 4.0


def test_a_limit_not_in_full_use_does_not_grow() -> None:
    e = endpoint(8)
    seqs = send(e, 4)
    too_many(e, seqs[0])
    for _ in seqs[1:]:
        e.release()
    assert e.limit == 2
    for _ in range(5):  # one request at a time under a limit of two
        send(e)
        ok(e)
    assert e.limit == 2


def test_the_limit_never_goes_below_one_and_a_429_there_paces_the_requests() -> None:
    clock = FakeClock()
    e = endpoint(4, clock)
    seq, paused = paced_429(e, clock)
    assert paused is False
    assert e.limit == 1
    assert e.paused_until == 0  # no pause for everyone: a pace
    pace = e.pace()
    assert pace is not None
    assert pace == pytest.approx(BETA * 10 / 0.1, rel=0.01)  # 0.7 x the rate measured
    clock.sleeps.clear()
    send(e)
    e.release()
    send(e)
    e.release()
    # The requests after the cut go 1/pace apart, waited for with single sleeps.
    assert clock.sleeps == [pytest.approx(1 / pace)] * 2


def test_the_pace_regrows_along_a_cubic_curve_to_the_rate_it_was_cut_from() -> None:
    clock = FakeClock()
    e = endpoint(4, clock)
    seq, _ = paced_429(e, clock)
    top = 100.0
    k = (top * (1 - BETA) / 0.4) ** (1 / 3)  # seconds back to the rate cut from
    start = clock.now
    paces = [e.pace(start + t) for t in (0, k / 2, k, k + 2, k + 10)]
    assert paces[0] == pytest.approx(70, rel=0.01)
    assert paces[2] == pytest.approx(top, rel=0.01)
    assert paces[0] < paces[1] < paces[2] < paces[3] < paces[4]  # concave, then probing
    assert paces[2] - paces[1] < paces[1] - paces[0]
    assert paces[4] > 2 * top  # a server that recovered is found again within seconds


def test_once_paced_a_429_in_a_new_round_cuts_the_pace_again() -> None:
    clock = FakeClock()
    e = endpoint(4, clock)
    seq, _ = paced_429(e, clock)
    first = e.pace()
    e.rate_limited(seq - 1, 1.0, False)  # a 429 for a request sent before the cut
    assert e.pace() == first
    [later] = send(e)
    too_many(e, later)
    second = e.pace()
    assert first is not None and second is not None
    assert second == pytest.approx(BETA * first, rel=0.05)
    assert e.pace_cuts == 2


def test_budget_spent_pauses_every_request_until_the_reset() -> None:
    clock = FakeClock()
    e = endpoint(8, clock)
    seqs = send(e, 3)  # (three: a 429 at two in flight would pace the requests too)
    # No reset header: the endpoint pauses for the Retry-After, and the request with it.
    assert too_many(e, seqs[0], wait=5.0, spent=True) is True
    assert e.paused_until == clock.now + 5
    e.release()
    e.release()
    clock.sleeps.clear()
    for _ in range(3):  # everyone waits for the pause, once
        send(e)
        ok(e)
    assert clock.sleeps == [5.0]
    # A reset sooner than the Retry-After: the endpoint pauses until it, and the request
    # that got the 429 still waits its own Retry-After (False: not covered by the pause).
    [seq] = send(e)
    assert too_many(e, seq, wait=5.0, spent=True, reset=0.5) is False
    assert e.paused_until == clock.now + 0.5


def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    e = endpoint(1)

    async def go() -> tuple[bool, int]:
        await e.acquire(10)
        first = asyncio.create_task(e.acquire(10))
        second = asyncio.create_task(e.acquire(10))
        await asyncio.sleep(0)  # both wait for the one slot
        e.release()  # the slot goes to the first waiter ...
        first.cancel()  # ... which is cancelled before it runs
        await asyncio.wait_for(second, 1)  # the second gets the slot instead
        return first.cancelled(), e.in_flight

    assert asyncio.run(go()) == (True, 1)


def test_a_cut_of_the_pace_respaces_requests_already_waiting_for_theirs() -> None:
    clock = FakeClock()
    e = endpoint(8, clock)
    seq, _ = paced_429(e, clock)
    pace = e.pace()
    assert pace is not None

    async def go() -> list[float]:
        sent: list[float] = []

        async def one() -> None:
            await e.acquire(10)
            sent.append(clock.now)
            e.release()

        tasks = [asyncio.create_task(one()) for _ in range(3)]
        await asyncio.sleep(0)  # all three hold a slot, each waiting for its time
        e.rate_limited(e._sent + 1, 1.0, False)  # a 429 from a request sent after the cut
        await asyncio.gather(*tasks)
        return sent

    sent = asyncio.run(go())
    slower = e.pace()
    assert slower is not None and slower < pace
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    # The waiters re-reserved their times at the slower pace rather than going out at the
    # old one into more 429s.
    assert all(g >= 1 / slower * 0.99 for g in gaps)


def test_once_paced_one_429_cuts_the_pace_however_wide_the_limit_has_grown() -> None:
    clock = FakeClock()
    e = endpoint(64, clock)
    e.limit = 4.0
    seq, _ = paced_429(e, clock)
    assert e.pace_cuts == 1
    first = e.pace()
    e.limit = 30.0  # pacing sleepers hold slots, so the limit grows while paced
    [later] = send(e)
    too_many(e, later)
    assert e.pace_cuts == 2
    assert first is not None and (e.pace() or 0) < first


def test_429s_coming_steadily_at_two_in_flight_pace_the_requests() -> None:
    """Halving two to one went back to two at the next answer: against a server capped
    near one request per answer's time, every other request got a 429 for ever."""
    clock = FakeClock()
    e = endpoint(8, clock)
    for _ in range(10):  # 100 a second, two at a time
        send(e, 2)
        ok(e)
        ok(e)
        clock.now += 0.02
    seqs = send(e, 2)
    assert too_many(e, seqs[1]) is False  # the other still in flight
    assert e.limit == 1 and e.pace() is None  # one 429 (a provider's random ones): halved
    for _ in range(5):  # ... and again, and again: 429s are steady
        ok(e)
        assert e.limit == 2
        seqs = send(e, 2)
        too_many(e, seqs[1])
    assert e.limit == 1 and e.pace() is not None
    ok(e)
    clock.sleeps.clear()
    send(e)
    assert clock.sleeps  # the next request waits for the pace


def one_at_a_time(e: Endpoint, clock: FakeClock, answers: int,
                  limited: Callable[[float], bool], answer_s: float = 0.05) -> tuple[float, int]:
    """`answers` requests one at a time, each answered `answer_s` after it went out (after
    any pace); `limited(sent_at)` says whether the server answers it with a 429 (the
    request is then retried by the caller, which this leaves out). The time taken and the
    429s."""
    start, limits = clock.now, 0
    for _ in range(answers):
        [seq] = send(e)
        sent_at = clock.now
        clock.now += answer_s
        if limited(sent_at):
            limits += 1
            too_many(e, seq, wait=0.1)
        else:
            ok(e)
    return clock.now - start, limits


def test_a_server_capped_below_one_at_a_time_is_paced_to_its_cap() -> None:
    """A server allowing 10 requests a second (a token bucket, a burst of two) answering
    in 50 ms: one at a time would send 20 a second. The pace comes down to the cap within
    the first hundred answers and holds near it, without a 429 for every other request."""
    clock = FakeClock()
    e = endpoint(1, clock)
    bucket = {"tokens": 2.0, "at": clock.now}

    def capped(at: float) -> bool:
        bucket["tokens"] = min(2.0, bucket["tokens"] + (at - bucket["at"]) * 10.0)
        bucket["at"] = at
        if bucket["tokens"] >= 1.0:
            bucket["tokens"] -= 1.0
            return False
        return True

    one_at_a_time(e, clock, 100, capped)
    took, limits = one_at_a_time(e, clock, 1000, capped)
    assert limits <= 50, (limits, e.pace_cuts)  # (27 per 1,000)
    served = 1000 - limits
    assert served / took >= 0.9 * 10.0, (served / took, e.pace_cuts)  # (0.94 of the cap)
