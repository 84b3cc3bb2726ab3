"""The feeder starts each chunk's cache lookup before it dispatches the chunk before it
(`Runner._feed_chunks`): a lookup it never uses, because the writer gave up or a budget
stopped the run, is cancelled, never left running with its error unretrieved."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from types import SimpleNamespace as NS
from typing import Any

from sqlalchemy.exc import OperationalError

from promptlab.runner.calls import CHUNK, FIRST_CHUNK, CallBuilder
from promptlab.runner.engine import Runner


class _Calls:
    chunks = CallBuilder.chunks

    def pending(self, trial: Any, started: dict[int, int]) -> Any:
        return NS(trial=trial, cache_key=f"k{trial.index}", prior=None)


def _runner(cache_sources: Any, failed: threading.Event, emitted: list[Any]) -> Runner:
    r = object.__new__(Runner)  # only what the feeder touches
    r.spec = NS(run=NS(cache="readwrite"))  # type: ignore[assignment]
    r.plan = [NS(index=i) for i in range(FIRST_CHUNK + 3 * CHUNK)]  # type: ignore[assignment]
    r._calls = _Calls()  # type: ignore[assignment]
    r.store = NS(cache_sources=cache_sources)  # type: ignore[assignment]
    r._writer = NS(failed=failed, backlog=0, behind=lambda most: False)  # type: ignore[assignment]
    r.max_backlog = 5000
    r._recorder = NS(record_hit=lambda p, exists, hit: p)  # type: ignore[assignment]

    def emit(record: Any) -> None:
        emitted.append(record)
        if len(emitted) == FIRST_CHUNK:
            failed.set()  # the writer gives up after the first chunk's hits
    r._emit = emit  # type: ignore[method-assign]
    return r


def test_lookups_the_feeder_never_uses_are_cancelled_when_the_writer_gives_up() -> None:
    calls: list[int] = []

    def cache_sources(keys: list[str]) -> dict[str, tuple[str, int]]:
        calls.append(len(keys))
        if len(calls) == 1:
            return {k: ("src", 0) for k in keys}  # the first chunk: all hits
        time.sleep(0.2)  # the database is failing: every later lookup fails, slowly
        raise OperationalError("SELECT ...", {}, Exception("disk I/O error"))

    failed, emitted, unhandled = threading.Event(), list[Any](), list[dict[str, Any]]()
    runner = _runner(cache_sources, failed, emitted)
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: unhandled.append(context))
    try:
        async def feed() -> None:
            await runner._feed_chunks(asyncio.Queue(), iter(runner.plan), {})
            await asyncio.sleep(0.5)  # every lookup thread has finished by now

        loop.run_until_complete(feed())
        gc.collect()
    finally:
        loop.close()
    assert len(emitted) == FIRST_CHUNK and failed.is_set()
    assert [c.get("message") for c in unhandled] == []
