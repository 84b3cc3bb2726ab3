"""Reading result files back: 100,000 lines into SQLite with memory flat as the file grows;
result files over the 64 MB cap on one reply read whole.

Slow-ish by design (two child processes ingest 10,000 and 100,000 lines; ~10 s of CPU,
longer in wall time on a loaded machine): the benchmark child (benchmarks/_batch_ingest.py)
is run as is, with its quick send side, and checks that every result is stored."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from test_batch_run import batch_project, run

from promptlab.batch.results import result_lines
from promptlab.providers.base import HttpRequest
from promptlab.runner.client import as_sender
from promptlab.testing import MockConfig, MockServer


def ingest(n: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/_batch_ingest.py"), str(n),
                           "--synthetic"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, float] = json.loads(done.stdout)
    return out


def test_100000_result_lines_are_all_stored_and_memory_stays_flat() -> None:
    small, large = ingest(10_000), ingest(100_000)
    assert small["lines"] == 10_000 and large["lines"] == 100_000  # the child counts them
    # Ten times the lines, not ten times the memory (it was +143 MB at 100,000 lines before
    # streaming). Growth levels off as the allocator and SQLite's caches fill: measured
    # +29-32 MB at 10,000 lines, +53 at 30,000, +55-57 at 100,000, +61 at 200,000; the
    # margin was 25 MB, which 10,000 against 100,000 sat on. Growth counts from the memory
    # in use before the ingest (it counted from the peak so far, which setting up a small
    # database could exceed: a small ingest then "grew" by 0).
    assert large["growth_mb"] < small["growth_mb"] + 40, (small, large)


class ChunkedReply:
    """A result file of `n` chunks of 1 MB, each a thousand 1,000-byte lines."""

    status = 200
    headers: dict[str, str] = {}

    def __init__(self, n: int) -> None:
        self.n = n

    async def chunks(self) -> AsyncIterator[bytes]:
        line = b"x" * 999 + b"\n"
        for _ in range(self.n):
            yield line * 1000

    def lines(self) -> AsyncIterator[str]:
        raise AssertionError("a result file is read in chunks")

    async def read(self) -> bytes:
        raise AssertionError("a result file is never read whole")


def test_a_result_file_over_the_64_mb_reply_cap_is_read_to_the_end() -> None:
    async def count() -> tuple[int, int]:
        lines = size = 0
        async for line in result_lines(ChunkedReply(80), "batch_x"):
            lines += 1
            size += len(line) + 1
        return lines, size

    assert asyncio.run(count()) == (80_000, 80_000_000)


def test_a_result_file_over_64_mb_from_the_server_is_stored_whole(tmp_path: Path) -> None:
    long = "word " * 700_000  # 3.5 MB an answer, 20 answers: a 70 MB output file
    with MockServer(MockConfig(batch_delay_s=0.05, alter={"What is item": long})) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=20)
        over = ("run.batch=true", "models.an.batch=false")
        assert run(root, tmp_path / "b.db", *over) == "completed"
        assert server.state.counts["batches:openai"] == 1
    with sqlite3.connect(tmp_path / "b.db") as conn:
        rows = conn.execute("select r.status, length(r.output) = ? from results r join "
                            "trials t using (run_id, idx) where t.model_alias = 'oa'",
                            (len(long),)).fetchall()
    assert rows == [("ok", 1)] * 20


def test_an_injected_httpx_client_streams_result_lines_too() -> None:
    body = b"".join(b'{"custom_id": "t%d"}\n' % i for i in range(5000))

    async def read() -> list[bytes]:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
        async with httpx.AsyncClient(transport=transport) as client:
            sender, _ = as_sender(client, 1)
            request = HttpRequest("GET", "http://127.0.0.1:9/v1/files/f/content", {}, b"")
            async with sender.stream(request, 10.0) as resp:
                return [line async for line in result_lines(resp, "batch_x")]

    lines = asyncio.run(read())
    assert lines == body.splitlines()


def test_a_result_without_a_pending_attempt_gets_an_attempt_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results of a batch sent before pending attempts existed (or read twice) are not lost:
    their attempt is added after the trial's others, in the same transaction."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from _batch_ingest import synthetic_rows

    from promptlab.store import Record, Store

    with Store.open(str(tmp_path / "x.db")) as store:
        store.create_run(run_id="r", name="x", planned=3, config={}, overrides=[],
                         manifest={}, artifacts={})
        rows = [synthetic_rows(i) for i in range(3)]
        store.add_pending("r", [t for t, _ in rows], [a for _, a in rows[:2]])
        store.add_pending("r", [], [rows[1][1]])  # already pending: kept, not doubled

        def back(i: int) -> Record:
            attempt = {"run_id": "r", "idx": i, "url": "u", "status_code": 200,
                       "response_body": f"line {i}", "error_kind": None, "error": None}
            return Record({}, {}, [attempt], True)

        store.write_ingested([back(0), back(1), back(2)])
        store.write_ingested([back(0)])  # read twice: a second attempt, nothing lost
    with sqlite3.connect(tmp_path / "x.db") as conn:
        got = conn.execute("select idx, number, error_kind, response_body from attempts "
                           "order by idx, number").fetchall()
    assert got == [(0, 1, None, "line 0"), (0, 2, None, "line 0"), (1, 1, None, "line 1"),
                   (2, 1, None, "line 2")]
