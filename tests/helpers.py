"""Test helpers: run a project's experiment in-process with injected clock, sleep and client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from promptlab.config.loading import load
from promptlab.experiment.prepare import Prepared, prepare
from promptlab.runner import RunStats
from promptlab.runner.session import NewRun, Session
from promptlab.store import Store


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class RealClock(FakeClock):
    """The real monotonic clock and real sleeps, for what a fake clock cannot show: a
    fake clock adds up sleeps that overlap in real time."""

    def __call__(self) -> float:
        self.now = time.monotonic()
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(seconds)


def prepared_for(project: Path, *overrides: str) -> Prepared:
    return prepare(load(project / "experiments", list(overrides)))


def run_with(project: Path, handler: Callable[[httpx.Request], httpx.Response],
             *overrides: str, clock: FakeClock | None = None, db: str = "results.db",
             run_id: str = "r1") -> tuple[RunStats, Store]:
    """Run the project's experiment through a `Session`, its HTTP answered by `handler`."""
    prepared = prepared_for(project, *overrides)
    store = Store.open(str(project / db))
    clock = clock or FakeClock()

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    try:
        session = Session(store, prepared.spec, prepared.renderer, client=client,
                          sleep=clock.sleep, clock=clock)
        outcome = session.run(NewRun(config=prepared.loaded.config, overrides=overrides,
                                     artifacts=prepared.artifacts), run_id)
    finally:
        asyncio.run(client.aclose())
    return outcome.stats, store


def ok_chat(text: str = "fine") -> httpx.Response:
    return httpx.Response(200, json={"model": "m", "choices": [
        {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}})


def known_outcome(output: str, row: dict[str, object], params: dict[str, object]) -> bool:
    """A python scorer with outcomes fixed by the test data: rows whose id is in the row's
    own `wins` list pass for the model named in the output (see test_scoring)."""
    wins = row.get("wins") or []
    assert isinstance(wins, list)
    return any(f"model={w}" in output for w in wins)


def pass_at_temperature(output: str, row: dict[str, object], params: dict[str, object]) -> bool:
    """Passes exactly at the temperatures the dataset row lists in `pass_at`."""
    allowed = row.get("pass_at") or []
    assert isinstance(allowed, list)
    return params.get("temperature") in allowed
