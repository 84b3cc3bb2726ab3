"""Retry policy: what is worth retrying, and how long to wait.

Rate limits and transient faults are retried with exponential backoff, full jitter and a
cap; a server's Retry-After (seconds or HTTP date) or retry-after-ms wins over the
computed delay. Auth failures and other client errors are not retried.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "reset_wait_s", "retry_after_s"]

MAX_SERVER_WAIT_S = 600.0
RETRYABLE = frozenset({"rate_limit", "transient"})


def retry_after_s(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The server's requested wait in seconds, from retry-after-ms or Retry-After."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def should_retry(self, kind: str | None, attempt: int) -> bool:
        return kind in RETRYABLE and attempt < self.max_attempts

    def delay(self, attempt: int, server_wait: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if server_wait is not None:
            # The server knows when it will take us back: waiting less earns another 429.
            return min(server_wait, MAX_SERVER_WAIT_S)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)


def _duration_s(text: str) -> float | None:
    """OpenAI's reset format: '1s', '6m0s', '20ms', '1h2m3.5s'."""
    total, number = 0.0, ""
    i = 0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    matched = False
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            return None
        try:
            total += float(number) * units[unit]
        except ValueError:  # '1.2.3s', '.s': a server's header is untrusted text
            return None
        number, matched = "", True
        i += len(unit)
    return total if matched and not number else None


def reset_wait_s(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Wait implied by the providers' rate-limit reset headers (used on a 429 only)."""
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        value = headers.get(name)
        if value:
            parsed = _duration_s(value.strip())
            if parsed is not None:
                return parsed
    for name in ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset"):
        value = headers.get(name)
        if value:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return None
