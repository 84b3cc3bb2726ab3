"""The mock server's rate cap refuses what is over the rate, as a provider's limit does."""

from __future__ import annotations

import httpx
import pytest

from promptlab.testing import MockConfig, MockServer
from promptlab.testing.mock_rate import RateCap

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_admits_its_burst_then_the_rate() -> None:
    clock = Clock()
    cap = RateCap(100, burst=5, clock=clock)
    assert [cap.take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 0.03  # three requests' worth at 100 a second
    assert [cap.take() for _ in range(4)] == [True] * 3 + [False]
    clock.now += 10  # refilled, but never past the burst
    assert sum(cap.take() for _ in range(20)) == 5


def test_the_default_burst_is_a_tenth_of_a_second_at_least_one() -> None:
    assert RateCap(300).burst == 30
    assert RateCap(2).burst == 1
    with pytest.raises(ValueError, match="max_rps must be positive"):
        RateCap(0)


def test_budget_headers_count_down_to_zero() -> None:
    clock = Clock()
    cap = RateCap(10, burst=2, clock=clock)
    cap.take()
    assert cap.headers()["x-ratelimit-remaining-requests"] == "1"
    cap.take()
    assert cap.headers() == {"x-ratelimit-limit-requests": "2",
                             "x-ratelimit-remaining-requests": "0",
                             "x-ratelimit-reset-requests": "200ms"}


def test_requests_over_the_cap_get_429_with_retry_after_and_are_counted() -> None:
    config = MockConfig(max_rps=5, burst=3, retry_after_s=2.5)
    with MockServer(config) as s, httpx.Client(base_url=s.url) as c:
        answers = [c.post("/v1/chat/completions", json=CHAT) for _ in range(6)]
        counts = c.get("/_mock/stats").json()
    statuses = [a.status_code for a in answers]
    # Six requests in far less than the 0.2 s a token takes: the burst of three, then 429s.
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    refused = [a for a in answers if a.status_code == 429]
    assert all(a.headers["retry-after"] == "2.5" for a in refused)
    assert "x-ratelimit-remaining-requests" not in answers[0].headers  # off by default
    assert counts["rate:429"] == len(refused)
    assert counts["rate:ok"] == counts["status:200"] == 6 - len(refused)
    assert counts["requests"] == 6


def test_rate_headers_say_when_the_budget_is_spent() -> None:
    config = MockConfig(max_rps=1, burst=2, rate_headers=True)
    with MockServer(config) as s, httpx.Client(base_url=s.url) as c:
        first, second, third = (c.post("/v1/chat/completions", json=CHAT) for _ in range(3))
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.status_code == 429
    assert third.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize("value", ["-5", "0", "nan", "fast"])
def test_a_bad_rate_cap_is_one_line_and_exit_2(value: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from promptlab.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["mock-server", "--max-rps", value])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "--max-rps" in err and "Traceback" not in err and "a number above 0" in err


def test_the_cli_server_keeps_no_bodies_with_keep_requests_0() -> None:
    """The benchmarks' server: requests counted, none kept (memory and cost stay flat)."""
    import subprocess
    import sys
    import time

    from serve_support import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "promptlab", "mock-server", "--port",
                             str(port), "--keep-requests", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    c.get("/v1/models")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, "the mock server exited"
                    assert time.monotonic() < deadline, "the mock server did not start"
                    time.sleep(0.05)
            for _ in range(3):
                assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
            assert c.get("/_mock/requests").json() == []
            assert c.get("/_mock/stats").json()["requests"] == 3
    finally:
        proc.terminate()
        proc.wait(10)
