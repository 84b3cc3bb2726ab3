"""Retry what is worth retrying, and only that; waits are injected, never slept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from helpers import FakeClock, ok_chat, run_with

from promptlab.runner.retry import RetryPolicy, reset_wait_s, retry_after_s

ONE = ("models=[oa]", "prompts=[plain]", "grid.params.temperature=[0]", "grid.params.top_p=[1]")


def rows(project: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(project / "results.db") as conn:
        return conn.execute(sql).fetchall()


def flaky(statuses: list[int], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A handler answering each request with the next status, then 200s."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= len(statuses):
            return httpx.Response(statuses[len(seen) - 1], headers=headers or {},
                                  json={"error": {"message": "no"}})
        return ok_chat()

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


def test_retry_after_seconds_is_honoured(project: Path) -> None:
    clock = FakeClock()
    handler = flaky([429], {"retry-after": "7"})
    stats, _ = run_with(project, handler, *ONE, "dataset.limit=1", clock=clock)
    assert (stats.ok, stats.attempts) == (1, 2)
    assert clock.sleeps == [7.0]
    assert rows(project, "select number, status_code, retry_after_ms from attempts "
                         "order by number") == [(1, 429, 7000.0), (2, 200, None)]


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "3"}, 3.0),
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after": format_datetime(datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC), usegmt=True)},
     10.0),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert retry_after_s(headers, now) == expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
    ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
    ({"anthropic-ratelimit-requests-reset": "2030-01-01T00:00:05Z"}, 5.0),
])
def test_provider_reset_headers(headers: dict[str, str], expected: float) -> None:
    assert reset_wait_s(headers, datetime(2030, 1, 1, tzinfo=UTC)) == pytest.approx(expected)


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    import random

    policy = RetryPolicy(max_attempts=10, backoff_base_s=1.0, backoff_max_s=8.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)]:
        d = policy.delay(attempt, None, rng)
        assert ceiling / 2 <= d <= ceiling
    assert policy.delay(1, 100.0, rng) == 100.0  # the server's own wait wins
    assert policy.delay(1, 5000.0, rng) == 600.0  # within reason


def test_transient_errors_retry_until_max_attempts(project: Path) -> None:
    clock = FakeClock()
    stats, _ = run_with(project, flaky([500, 502, 503, 500]), *ONE, "dataset.limit=1",
                        clock=clock)
    # run.max_attempts is 3 in the test project: three tries, then a recorded error.
    assert (stats.ok, stats.errors, stats.attempts) == (0, 1, 3)
    assert len(clock.sleeps) == 2
    [(status, attempts, kind)] = rows(project, "select status, attempts, error_kind from results")
    assert (status, attempts, kind) == ("error", 3, "transient")


@pytest.mark.parametrize("status", [400, 404, 422])
def test_fatal_errors_are_not_retried(project: Path, status: int) -> None:
    clock = FakeClock()
    stats, _ = run_with(project, flaky([status] * 5), *ONE, "dataset.limit=1", clock=clock)
    assert (stats.errors, stats.attempts, clock.sleeps) == (1, 1, [])


def test_timeouts_and_dropped_connections_are_transient(project: Path) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if len(calls) == 2:
            raise httpx.RemoteProtocolError("dropped", request=request)
        if len(calls) == 3:
            return httpx.Response(200, content=b'{"choices": [')  # truncated body
        return ok_chat()

    stats, _ = run_with(project, handler, *ONE, "dataset.limit=1", "run.max_attempts=5")
    assert (stats.ok, stats.attempts) == (1, 4)
    kinds = rows(project, "select error_kind from attempts order by number")
    assert kinds == [("transient",), ("transient",), ("transient",), (None,)]


def test_auth_failure_stops_the_endpoint_and_skips_the_rest(project: Path) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": {"message": "bad key"}})

    stats, _ = run_with(project, handler, *ONE, "run.concurrency=1")
    assert len(seen) == 1
    assert (stats.errors, stats.skipped) == (1, 2)
    assert "auth failure on model 'oa'" in stats.stopped_models["oa"]
    statuses = rows(project, "select status from results order by idx")
    assert statuses == [("error",), ("skipped",), ("skipped",)]


def test_a_429_pauses_the_endpoint_for_every_worker(project: Path) -> None:
    clock = FakeClock()
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now)
        if len(sent_at) == 1:
            return httpx.Response(429, headers={"retry-after": "30"})
        return ok_chat()

    stats, _ = run_with(project, handler, *ONE, "run.concurrency=1", clock=clock)
    assert stats.ok == 3
    # Every request after the 429 waited for the pause, not just the retried one.
    assert all(t >= sent_at[0] + 30 for t in sent_at[1:])


def test_requests_per_minute_are_paced(project: Path) -> None:
    clock = FakeClock()
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now)
        return ok_chat()

    run_with(project, handler, "models=[oa]", "prompts=[plain,fewshot]",
             "models.oa.rpm=60", "run.concurrency=1", clock=clock)
    assert len(sent_at) == 2 * 4 * 3
    gaps = [b - a for a, b in zip(sorted(sent_at), sorted(sent_at)[1:], strict=False)]
    assert min(gaps) == pytest.approx(1.0)
    assert max(sent_at) - min(sent_at) == pytest.approx(23.0)


def test_tokens_per_minute_are_budgeted(project: Path) -> None:
    clock = FakeClock()
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now)
        return ok_chat()

    # Each call is estimated at ~270 tokens (prompt + the default 256 output tokens).
    run_with(project, handler, *ONE, "models.oa.tpm=540", "run.concurrency=1", clock=clock)
    span = max(sent_at) - min(sent_at)
    assert 25 <= span <= 40  # three calls of ~270 tokens at 540/min: the third waits ~30s


def test_aliases_sharing_an_endpoint_share_its_limits(project: Path) -> None:
    clock = FakeClock()
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now)
        return ok_chat() if "chat" in request.url.path else httpx.Response(200, json={
            "model": "m", "content": [{"type": "text", "text": "x"}],
            "usage": {"input_tokens": 1, "output_tokens": 1}})

    # oa and a copy of it on the same base URL and key: one endpoint, 30 rpm shared.
    (project / "experiments/models/oa2.yaml").write_text(
        (project / "experiments/models/oa.yaml").read_text().replace("models.oa", "models.oa2"))
    run_with(project, handler, "models=[oa,oa2]", "prompts=[plain]", "grid.params.top_p=[1]",
             "grid.params.temperature=[0]", "models.oa.rpm=30", "run.concurrency=1", clock=clock)
    assert len(sent_at) == 6
    assert max(sent_at) - min(sent_at) == pytest.approx(10.0)


@pytest.mark.parametrize("value", ["1.2.3s", ".s", "..ms", "1..5m", "1.5.0s"])
def test_a_malformed_reset_header_is_ignored(value: str) -> None:
    assert reset_wait_s({"x-ratelimit-reset-requests": value}) is None
    assert reset_wait_s({"x-ratelimit-reset-tokens": value,
                         "x-ratelimit-reset-requests": "2s"}) == 2.0


def test_a_429_with_a_malformed_reset_header_is_retried_and_the_run_goes_on(
        project: Path) -> None:
    """It crashed the run (a ValueError out of a worker): answers already paid for were
    never recorded."""
    clock = FakeClock()
    handler = flaky([429, 429], {"x-ratelimit-reset-requests": "1.2.3s"})
    stats, _ = run_with(project, handler, *ONE, "run.concurrency=1", clock=clock)
    assert (stats.ok, stats.errors) == (3, 0)
    assert rows(project, "select count(*) from attempts") == [(5,)]


def test_a_spent_budget_pauses_its_endpoint_at_most_ten_minutes(project: Path) -> None:
    """A reset in days (a requests-per-day limit) or past any number held the run for it."""
    clock = FakeClock()
    handler = flaky([429], {"retry-after": "1", "x-ratelimit-remaining-requests": "0",
                            "x-ratelimit-reset-requests": "99999h"})
    stats, _ = run_with(project, handler, *ONE, "run.concurrency=1", clock=clock)
    assert stats.ok == 3
    assert 599 < sum(clock.sleeps) <= 601, clock.sleeps


def test_an_answer_promptlab_cannot_handle_is_a_recorded_error_not_a_crash(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A defect of ours on an odd answer (as the reset header's was) costs that trial only."""
    import promptlab.runner.engine as engine

    def broken(headers: object, now: object = None) -> float:
        raise ValueError("could not convert string to float: '1.2.3'")

    monkeypatch.setattr(engine, "reset_wait_s", broken)
    handler = flaky([429], {"retry-after": "1"})  # (read outside the try, it still crashed)
    stats, _ = run_with(project, handler, *ONE, "run.concurrency=1", clock=FakeClock())
    assert (stats.ok, stats.errors) == (2, 1)
    [(kind, error)] = rows(project, "select error_kind, error from results where status = 'error'")
    assert kind == "fatal" and "could not convert" in error
