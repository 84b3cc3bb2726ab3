"""A run keeps no per-call state: memory stays flat however long the run and however slow
the database (the feeder waits for the writer rather than holding finished records)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from helpers import ok_chat, prepared_for

from promptlab.runner.engine import Runner
from promptlab.runner.session import NewRun, Session
from promptlab.store import Record, Store

TEMPERATURES = "grid.params.temperature=[" + ",".join(f"{i / 20:g}" for i in range(20)) + "]"


def test_a_slow_database_holds_the_calls_back_instead_of_piling_up_records(
        project: Path) -> None:
    prepared = prepared_for(project, "models=[oa]", TEMPERATURES, "run.batch_size=5")
    store = Store.open(str(project / "results.db"))
    answered = written = 0
    behind: list[int] = []  # calls answered but not yet stored, seen at each write

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        answered += 1
        return ok_chat()

    real_write = store.write

    def slow_write(records: Sequence[Record]) -> None:
        nonlocal written
        behind.append(answered - written)
        time.sleep(0.01)  # ~500 records/s: slower than the calls
        real_write(records)
        written += len(records)

    store.write = slow_write  # type: ignore[method-assign]
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    try:
        run_id = Session(store, prepared.spec, prepared.renderer, client=client).start(
            NewRun(config=prepared.loaded.config))
        runner = Runner(prepared.spec, prepared.renderer, store, run_id, client=client,
                        max_backlog=20)
        stats = asyncio.run(runner.run())
    finally:
        asyncio.run(client.aclose())
        store.close()
    assert stats.ok == answered == written == 240
    # The bound, plus what is queued (2 per worker), in flight (8) and in the open batch.
    assert max(behind) <= 20 + 2 * 8 + 8 + 5
