"""A stop (SIGTERM, Ctrl-C) that comes while a request waits to be tried again keeps the
attempts it already made: they were sent, so they are recorded, and resume goes on from
them (its attempt numbers follow on, nothing is lost)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest
from helpers import prepared_for

from promptlab.runner import session as session_module
from promptlab.runner.session import NewRun, Session
from promptlab.store import Store

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.temperature=[0]", "grid.params.top_p=[1]",
       "run.concurrency=1"]


def test_sigterm_during_a_retry_after_wait_keeps_the_429_attempt(project: Path) -> None:
    prepared = prepared_for(project, *ONE)
    store = Store.open(str(project / "results.db"))
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        return httpx.Response(429, headers={"retry-after": "30"},
                              json={"error": {"message": "slow down"}})

    async def sleep(seconds: float) -> None:
        # SIGTERM arrives while the 429'd request waits its Retry-After: what the
        # process's handler does, without a real signal to pytest.
        session_module._on_sigterm(signal.SIGTERM, None)
        await asyncio.sleep(seconds)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    try:
        session = Session(store, prepared.spec, prepared.renderer, client=client, sleep=sleep)
        with pytest.raises(KeyboardInterrupt):
            session.run(NewRun(config=prepared.loaded.config), "r1")
    finally:
        asyncio.run(client.aclose())
        store.close()
    with sqlite3.connect(project / "results.db") as conn:
        attempts = conn.execute("select idx, number, status_code from attempts").fetchall()
        results = conn.execute("select idx, status, attempts from results").fetchall()
        [(status,)] = conn.execute("select status from runs").fetchall()
    assert status == "interrupted"
    assert sent >= 1 and len(attempts) == sent
    assert all(code == 429 for _, _, code in attempts)
    # Each trial with attempts has its result row (an error: resume sends it again).
    assert sorted(idx for idx, _, _ in results) == sorted({idx for idx, _, _ in attempts})
    assert all(s == "error" for _, s, _ in results)
