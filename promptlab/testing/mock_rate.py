"""The mock server's rate cap: a token bucket, as a provider's requests-per-second limit.

The bucket holds up to `burst` requests and refills continuously at `rate` a second; a
request that finds it empty is refused (the server answers 429). Real providers announce
what is left in ``x-ratelimit-*-requests`` headers; `headers` gives them for the mock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RateCap"]


class RateCap:
    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"max_rps must be positive, not {rate:g}")
        self.rate = rate
        # Without a burst, a tenth of a second's worth: one request at a time would
        # otherwise be refused whenever two arrive closer than 1/rate apart.
        self.burst = max(1.0, burst if burst is not None else rate / 10)
        self.clock = clock
        self._tokens = self.burst
        self._at = clock()

    def take(self) -> bool:
        """Admit one request (True) or refuse it (False, nothing taken)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def headers(self) -> dict[str, str]:
        """OpenAI's request-budget headers for the bucket as it is now (after a take)."""
        full_in = (self.burst - self._tokens) / self.rate
        return {"x-ratelimit-limit-requests": f"{self.burst:g}",
                "x-ratelimit-remaining-requests": str(math.floor(self._tokens)),
                "x-ratelimit-reset-requests": f"{max(full_in, 0.0) * 1000:.0f}ms"}
