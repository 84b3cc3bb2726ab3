"""Per-endpoint limits: concurrency, requests and tokens per minute, and shared pauses.

An endpoint is what a provider bills and throttles: provider + base URL + API key
variable. Model aliases that share one share its limits.

Its concurrency adapts as TCP's window does (AIMD): an answer while the limit was in
full use adds 1/limit to it (one per round of calls) up to the configured ceiling, and
429s halve the requests in flight, at most once per round (only a request sent after
the last cut can cut again) and once they are a tenth of the round (one, below a limit
of ten: a provider's few random 429s do not hold a wide limit down). At one request in
flight concurrency no longer bounds the rate (a fast server answers one at a time
faster than it allows), so a 429 there, or at two when 429s keep coming (halved to one,
the limit was back at two after the next answer, and every other request got a 429),
paces the requests instead: the rate drops to
0.7 of the rate measured, then regrows along CUBIC's curve in time since the cut, as
the AWS SDKs' adaptive retry mode paces its client. The request that got the 429 waits
its Retry-After alone; the whole endpoint pauses only when the provider's headers say
its budget is spent (until their reset, else for the Retry-After). Waits are single
injected `sleep` calls (no polling), so tests run with a fake clock and no real waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from promptlab.runner.retry import MAX_SERVER_WAIT_S
from promptlab.spec import ModelSpec

__all__ = ["Endpoint", "EndpointLimits", "budget_spent", "endpoint_key", "endpoints_of"]

_REMAINING = ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
              "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-tokens-remaining")


# Pacing (below one request in flight): a cut keeps BETA of the rate cut from (`top`),
# which then regrows as top + CUBIC_C * (t - K)^3, back at `top` after K seconds (the
# AWS SDKs' adaptive retry mode's constants).
BETA = 0.7
CUBIC_C = 0.4  # requests/s per s^3
MIN_PACE = 0.5  # requests/s
SENDS = 32  # send times kept to measure the rate at a cut
# A round's 429s cut it once they are this share of the limit (one, below ten): a
# provider's random 429s (2.5% of calls) would otherwise hold 64 in flight near nine.
TOLERATE = 0.1
# A 429 at two in flight paces the requests too when this many of the last RECENT
# answers were 429s (30%): the limit went 1 -> 2 -> 1 for ever against a server allowing
# about one request per answer's time (every other request a 429), while a provider's
# random 429s (5%) at two in flight only halve it, as before (pacing on each of them
# slowed such a run 2-3 x; at 5%, a 429 finds 5 more among the 19 answers before it
# about once in 370).
RECENT = 20
STEADY_429S = 6


def budget_spent(headers: Mapping[str, str]) -> bool:
    """Whether a provider's rate-limit headers say nothing is left until the reset."""
    for name in _REMAINING:
        value = headers.get(name)
        if value is not None and value.strip() in ("0", "0.0"):
            return True
    return False


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
                 sleep: Callable[[float], Awaitable[None]], ceiling: int | None = None) -> None:
        self.key = key
        self.limits = limits
        self.clock = clock
        self.sleep = sleep
        # The most requests in flight: the configured limit, else the run's concurrency.
        self.ceiling = max(1, limits.max_concurrency or ceiling or 1_000_000)
        self.limit = float(self.ceiling)
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sent = 0  # requests let through so far; a 429 names the one it answered
        self._cut_at = 0  # the value of _sent at the last cut of the limit
        self._round_429s = 0  # 429s to requests sent since the cut, in this round ...
        self._round_answers = 0  # ... and all its answers
        self._next_slot = 0.0
        self._next_pace = 0.0
        self._sends: deque[float] = deque(maxlen=SENDS)
        self._recent: deque[bool] = deque(maxlen=RECENT)  # the last answers: a 429?
        self._pace_top = 0.0  # the rate at the last pace cut (0: not paced)
        self._pace_cut = 0.0  # when it was cut
        self._pace_k = 0.0  # seconds until the rate regrows to _pace_top
        self._epoch = 0  # pace cuts so far: a slot reserved before one is reserved again
        self._tokens = float(limits.tpm or 0)
        self._tokens_at = clock()
        self.paused_until = 0.0
        self._last_sent: float | None = None
        self.turn: float | None = None  # the rpm turn `acquire` gave its last request
        self.pauses = 0
        self.rate_limits = 0
        self.pace_cuts = 0
        self.stopped: str | None = None

    def pause(self, seconds: float) -> None:
        """Hold every request to this endpoint for `seconds`."""
        until = self.clock() + seconds
        if until > self.paused_until:
            self.paused_until = until
            self.pauses += 1

    def rate_limited(self, seq: int, wait: float, spent: bool,
                     reset: float | None = None) -> bool:
        """Request number `seq` got a 429 asking for `wait` s; True if the endpoint paused
        for at least that long (the request need not wait on its own).

        Once per round, when its 429s reach a tenth of the limit, the requests in flight
        halve, or at one in flight (two, with 429s steady; or once paced) the pace drops.
        The endpoint pauses for everyone only when the budget is spent: until `reset` (the
        provider's reset header) if given, else for `wait`.
        """
        self.rate_limits += 1
        self._recent.append(True)
        self._round_answers += 1
        if seq > self._cut_at:
            self._round_429s += 1
        need = 1.0 if self._pace_top else TOLERATE * int(self.limit)  # paced: every one
        if seq > self._cut_at and self._round_429s >= need:
            used = min(int(self.limit), self.in_flight + 1)  # + the one that got the 429
            steady = used == 2 and sum(self._recent) >= STEADY_429S
            if used > 1 and not steady and not self._pace_top:
                self.limit = max(1.0, used / 2)
            else:  # one in flight is too many (two, steadily), or already paced: slow the pace
                self.limit = min(self.limit, max(1.0, used / 2))
                self._slow_down()
            self._cut_at = self._sent
            self._round_429s = self._round_answers = 0
        elif self._round_answers >= self.limit:  # a round without a cut: count afresh
            self._round_429s = self._round_answers = 0
        if spent:
            # At most what a retry waits: a requests-per-day reset would hold the run
            # for hours, and a reset past any number for ever.
            pause = min(reset if reset is not None else wait, MAX_SERVER_WAIT_S)
            self.pause(pause)
            return pause >= wait
        return False

    def pace(self, now: float | None = None) -> float | None:
        """The paced requests per second (None until a 429 came at one in flight)."""
        if not self._pace_top:
            return None
        t = (self.clock() if now is None else now) - self._pace_cut
        return max(MIN_PACE, self._pace_top + CUBIC_C * (t - self._pace_k) ** 3)

    def _slow_down(self) -> None:
        now = self.clock()
        span = now - self._sends[0] if self._sends else 0.0
        measured = max(len(self._sends) - 1, 1) / max(span, 1e-3)
        current = self.pace(now)
        top = measured if current is None else min(measured, current)
        self._pace_top, self._pace_cut = top, now
        self._pace_k = (top * (1 - BETA) / CUBIC_C) ** (1 / 3)
        self._epoch += 1
        self._next_pace = now + 1.0 / max(MIN_PACE, top * BETA)
        self.pace_cuts += 1

    def answered(self) -> None:
        """A request got an answer that was not a 429: if the limit was in full use (a
        window not used is not known to be safe), grow it by 1/limit."""
        self._recent.append(False)
        self._round_answers += 1
        if self._round_answers >= self.limit:  # a round without a cut: count afresh
            self._round_429s = self._round_answers = 0
        if self.limit < self.ceiling and (self.in_flight + 1 >= int(self.limit)
                                          or self._waiters):
            before = int(self.limit)
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
            if int(self.limit) > before:
                self._wake()

    async def acquire(self, est_tokens: int) -> int:
        """Wait for the pause, rate, token budget, a concurrency slot and then the pace;
        the request's sequence number (for `rate_limited`)."""
        wait = self.paused_until - self.clock()
        if wait > 0:
            await self.sleep(wait)
        turn = None
        if self.limits.rpm:
            now = self.clock()
            turn = slot = max(now, self._next_slot)
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
        while self.in_flight >= int(self.limit):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the slot it was given on
                raise
        self.in_flight += 1
        if self._pace_top:
            # Paced with the slot held: a request queued for a slot before a cut would
            # otherwise go out at once, get a 429 and cut the pace again.
            try:
                await self._paced()
            except asyncio.CancelledError:
                self.release()
                raise
        self._sent += 1
        self._sends.append(self.clock())
        self.turn = turn  # (read by the caller before it awaits anything else)
        return self._sent

    async def _paced(self) -> None:
        for _ in range(8):  # again only if the pace was cut while it slept (a few times)
            now = self.clock()
            pace = self.pace(now)
            assert pace is not None
            slot = max(now, self._next_pace)
            self._next_pace = slot + 1.0 / pace
            if slot <= now:
                return
            epoch = self._epoch
            await self.sleep(slot - now)
            if self._epoch == epoch:
                return

    def hold_off(self, turn: float | None) -> tuple[float, float | None]:
        """How long a request this endpoint let through a while ago (at its rpm `turn`)
        must still wait, and its turn: the rest of a pause; for an `rpm` endpoint, a new
        turn if its own is gone by half a spacing (those delayed would otherwise go out
        beside the ones on time, over the rate), and 0.9 of a spacing after the last sent."""
        now = self.clock()
        wait = self.paused_until - now
        if self.limits.rpm and turn is not None:
            spacing = 60.0 / self.limits.rpm
            if now > turn + 0.5 * spacing:
                turn = max(now, self._next_slot)
                self._next_slot = turn + spacing
            wait = max(wait, turn - now)
            if self._last_sent is not None:  # (0.9: a turn's jitter)
                wait = max(wait, self._last_sent + 0.9 * spacing - now)
        return wait, turn

    def sending(self) -> None:
        """A request goes now (`hold_off`)."""
        self._last_sent = self.clock()

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


def endpoints_of(models: Sequence[ModelSpec], clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]],
                 concurrency: int) -> dict[str, Endpoint]:
    """Each model alias's endpoint: aliases that share an endpoint share one, under the
    tightest of their limits."""
    limits: dict[str, EndpointLimits] = {}
    for m in models:
        mine = EndpointLimits(m.max_concurrency, m.rpm, m.tpm)
        k = endpoint_key(m)
        limits[k] = limits[k].merge(mine) if k in limits else mine
    endpoints = {k: Endpoint(k, v, clock, sleep, concurrency) for k, v in limits.items()}
    return {m.alias: endpoints[endpoint_key(m)] for m in models}


def lanes(models: Sequence[ModelSpec], endpoint_of: Mapping[str, Endpoint]
          ) -> list[tuple[list[int], Endpoint]]:
    """The models (by position) sending through each endpoint, in the order of the first."""
    by_endpoint: dict[int, tuple[list[int], Endpoint]] = {}
    for i, m in enumerate(models):
        endpoint = endpoint_of[m.alias]
        by_endpoint.setdefault(id(endpoint), ([], endpoint))[0].append(i)
    return list(by_endpoint.values())
