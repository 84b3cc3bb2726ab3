"""An endpoint that makes its calls wait (a rate limit, a pause, a low concurrency cap)
holds up only its own calls: another endpoint's calls go out meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from helpers import FakeClock, RealClock, ok_chat, run_with

# oa (OpenAI wire, its own key) and an (Anthropic wire) are two endpoints of one mock.
BOTH = ("models=[oa,an]", "prompts=[plain]", "grid.params.temperature=[0]",
        "grid.params.top_p=[1]", "grid.repeats=8", "run.concurrency=4")


def _anthropic_ok() -> httpx.Response:
    return httpx.Response(200, json={"model": "m", "content": [{"type": "text", "text": "x"}],
                                     "usage": {"input_tokens": 1, "output_tokens": 1}})


def _recording(clock: FakeClock, order: list[tuple[str, float]]):  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/messages"):
            order.append(("an", clock()))
            return _anthropic_ok()
        order.append(("oa", clock()))
        return ok_chat()
    return handler


def _oa_before_last_an(order: list[tuple[str, float]]) -> int:
    names = [name for name, _ in order]
    last_an = len(names) - 1 - names[::-1].index("an")
    return names[:last_an].count("oa")


def test_a_paced_endpoint_does_not_hold_up_another(project: Path) -> None:
    clock = RealClock()
    order: list[tuple[str, float]] = []
    # oa first in the plan, at 1,200 requests a minute: its 24 calls take 1.15 s.
    stats, _ = run_with(project, _recording(clock, order), *BOTH, "models.oa.rpm=1200",
                        clock=clock)
    assert stats.ok == 48
    oa = [t for name, t in order if name == "oa"]
    an = [t for name, t in order if name == "an"]
    assert max(oa) - min(oa) >= 1.1
    # Before, every worker took an oa call and waited its turn: an's calls went out once
    # fewer oa calls were left than workers, after oa's 16th.
    assert max(an) - min(oa) < 0.5 and _oa_before_last_an(order) < 10


def test_a_paused_endpoint_does_not_hold_up_another(project: Path) -> None:
    clock = RealClock()
    order: list[tuple[str, float]] = []
    answer = _recording(clock, order)

    def handler(request: httpx.Request) -> httpx.Response:
        clock()
        if not request.url.path.endswith("/messages") and not any(n == "oa" for n, _ in order):
            order.append(("oa", clock.now))  # the budget spent: oa pauses for 1 s
            return httpx.Response(429, headers={"retry-after": "1",
                                                "x-ratelimit-remaining-requests": "0"})
        return answer(request)

    stats, _ = run_with(project, handler, *BOTH, clock=clock)
    assert stats.ok == 48
    oa = [t for name, t in order if name == "oa"]
    an = [t for name, t in order if name == "an"]
    # oa's calls not yet sent when the 429 came waited for the pause (those sent beside
    # it arrive within milliseconds) ...
    assert not [t for t in oa if 0.1 < t - oa[0] < 1.0] and max(oa) - oa[0] >= 1.0
    assert max(an) - oa[0] < 0.9  # ... and an's went out meanwhile


def test_a_slow_endpoint_capped_at_one_call_does_not_hold_up_another(project: Path) -> None:
    order: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/messages"):
            order.append("an")
            return _anthropic_ok()
        order.append("oa")
        await asyncio.sleep(0.01)  # real time: oa answers slowly, one call at a time
        return ok_chat()

    stats, _ = run_with(project, handler, *BOTH, "models.oa.max_concurrency=1")
    assert stats.ok == 48
    # an's calls all went out while oa's first few were being answered; before, after
    # oa's 16th (8 workers, each with an oa call, waiting for oa's one place).
    last_an = len(order) - 1 - order[::-1].index("an")
    assert order[:last_an].count("oa") < 4


def test_the_run_budgets_hold_across_lanes(project: Path) -> None:
    priced = ("models.oa.price.input_per_mtok=100000", "models.oa.price.output_per_mtok=100000",
              "models.an.price.input_per_mtok=100000", "models.an.price.output_per_mtok=100000")
    # A call costs $0.40 on oa and $0.20 on an, and is reserved at ~$25 (its max_tokens):
    # one goes only with none in flight that could take the run over budget, so with
    # $30 both lanes' feeders wait for each call to finish, then both may count one more.
    for budgets in (("run.max_calls=5",), ("run.max_cost_usd=1",),
                    ("run.max_calls=5", "run.max_cost_usd=30")):
        order: list[tuple[str, float]] = []
        clock = FakeClock()
        answer = _recording(clock, order)

        async def slowly(request: httpx.Request, answer=answer) -> httpx.Response:  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.02)  # real time: both lanes' feeders are waiting by then
            return answer(request)

        stats, store = run_with(project, slowly, *BOTH, *priced, *budgets,
                                clock=clock, db=f"{len(budgets)}{budgets[0][4:12]}.db")
        store.close()
        # Each lane's feeder checks the same budgets: together they send no more.
        assert stats.calls == len(order) and stats.budget_stop
        if "run.max_calls=5" in budgets:
            assert len(order) == 5
        else:
            assert 1 <= stats.cost_usd < 1.4


def test_each_lane_walks_its_own_models_trials_of_a_shard(project: Path) -> None:
    from helpers import prepared_for

    from promptlab.grid import Plan, ShardPlan

    spec = prepared_for(project, "models=[oa,an]", "grid.repeats=3").spec
    plan = Plan(spec)
    assert [t.index for t in plan.of_models([1])] == list(range(len(plan) // 2, len(plan)))
    assert [t.key for t in plan.of_models([0, 1])] == [t.key for t in plan]
    for shards in (1, 2, 5):
        for shard in range(shards):
            part = ShardPlan(plan, shard, shards)
            lanes = [[t.index for t in part.of_models([m])] for m in (0, 1)]
            assert lanes[0] + lanes[1] == list(part.indexes)


def test_run_concurrency_bounds_the_calls_sent_across_lanes(project: Path) -> None:
    in_flight = {"oa": 0, "an": 0}
    most = {"oa": 0, "an": 0, "both": 0}
    together = []

    async def handler(request: httpx.Request) -> httpx.Response:
        name = "an" if request.url.path.endswith("/messages") else "oa"
        in_flight[name] += 1
        most[name] = max(most[name], in_flight[name])
        most["both"] = max(most["both"], in_flight["oa"] + in_flight["an"])
        together.append(in_flight["oa"] > 0 and in_flight["an"] > 0)
        await asyncio.sleep(0.01)  # real time
        in_flight[name] -= 1
        return _anthropic_ok() if name == "an" else ok_chat()

    stats, _ = run_with(project, handler, *BOTH, "run.concurrency=3",
                        "models.an.max_concurrency=2")
    assert stats.ok == 48
    # Three at a time in all (the lanes share the run's places), an never more than its
    # two, and the two endpoints' calls went out side by side.
    assert most == {"oa": 3, "an": 2, "both": 3} and sum(together) > 10


def test_a_paced_endpoint_held_up_by_another_lane_keeps_its_sends_apart(project: Path) -> None:
    """oa at 600 a minute beside an's slower calls, which keep the run's eight places
    busy: a call whose turn came while it waited for a place does not go out together with
    the next one (an independent review saw 13 oa calls in 8 ms)."""
    clock = RealClock()
    order: list[tuple[str, float]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        name = "an" if request.url.path.endswith("/messages") else "oa"
        order.append((name, clock()))
        if name == "an":
            await asyncio.sleep(0.2)  # real time
            return _anthropic_ok()
        return ok_chat()

    stats, _ = run_with(project, handler, *BOTH, "grid.repeats=20", "run.concurrency=8",
                        "models.oa.rpm=600", clock=clock)
    assert stats.ok == 120
    oa = [t for name, t in order if name == "oa"]
    assert min(b - a for a, b in zip(oa, oa[1:], strict=False)) >= 0.05  # 0.9 of 0.1 s, less lag


def test_a_call_waiting_for_a_place_is_not_sent_once_its_endpoint_stops() -> None:
    """A call its endpoint let through waits for one of the run's places (another lane's
    calls hold them); meanwhile the endpoint's key is refused: the call is not sent, and
    gives its place at the endpoint back."""
    from promptlab.runner.endpoint import Endpoint, EndpointLimits
    from promptlab.runner.slots import Sending

    async def main() -> None:
        clock = FakeClock()
        endpoint = Endpoint("oa", EndpointLimits(), clock, clock.sleep)
        sending = Sending(1)
        assert await sending.take(endpoint)  # another call's place
        await endpoint.acquire(10)
        waiting = asyncio.ensure_future(sending.take(endpoint))
        await asyncio.sleep(0)
        endpoint.stopped = "stopped after an auth failure"
        sending.give()
        assert await waiting is False
        assert await sending.take(endpoint) is False  # and none goes from then on

    asyncio.run(main())
