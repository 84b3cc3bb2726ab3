"""Child process of `run.py --batch-ingest`: ingest an N-line OpenAI batch output file into
a SQLite database the way the batch executor does (streamed line by line, records through
the writer thread in big transactions); prints JSON with the rate and the peak memory.

The send side (the trial rows and pending attempts the executor stores when it sends a
batch, and the result file) is prepared in another process, so the peak memory measured
is the ingest's alone; its time is reported apart (``send_side_s``). ``--synthetic``
stores plain rows on the send side instead of rendering each trial (quicker; the test
uses it). ``cpu_s`` is the process's CPU time (both threads) while ingesting: this
machine is shared, so the wall-clock rate depends on its load."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promptlab.batch.executor import BatchExecutor
from promptlab.batch.ingest import Ingest
from promptlab.batch.results import ingest_batch
from promptlab.batch.wire import BatchState
from promptlab.providers.base import dumps
from promptlab.spec import (
    DatasetSpec,
    ExperimentSpec,
    GridSpec,
    MessageSpec,
    ModelSpec,
    PromptSpec,
    Row,
    RunSettings,
)
from promptlab.store import Store
from promptlab.templates import Renderer
from promptlab.testing.mock_wire import answer


class FileSender:
    """A Sender whose every stream is the result file on disk, read in chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stream(self, request, timeout):  # type: ignore[no-untyped-def]
        path = self.path

        class Reply:
            status = 200
            headers: dict[str, str] = {}

            async def chunks(self):  # type: ignore[no-untyped-def]
                with path.open("rb") as f:
                    while chunk := f.read(1 << 16):
                        yield chunk

            async def read(self) -> bytes:
                return b""

        class Ctx:
            async def __aenter__(self) -> Reply:
                return Reply()

            async def __aexit__(self, *a: object) -> None:
                return None

        return Ctx()

    async def aclose(self) -> None:
        return None


def setup(n: int, work: Path) -> tuple[ExperimentSpec, Path]:
    model = ModelSpec("oa", "openai", "m", "http://127.0.0.1:9/v1", input_per_mtok=1.0,
                      output_per_mtok=2.0)
    rows = tuple(Row(f"r{i}", i, {"n": i}) for i in range(n))
    spec = ExperimentSpec("ingest", (model,), (PromptSpec("p", (MessageSpec(
        "user", "What is item {{ n }}?"),)),), DatasetSpec("d", None, rows),
        GridSpec({}), RunSettings(batch=True, batch_size=1000))
    return spec, work / "db.sqlite"


def prepare(n: int, work: Path, synthetic: bool) -> None:
    """The send side, as the executor does it: the result file the provider would return,
    and in the database the run, the trial rows and pending attempts, and the batch.
    `synthetic` (for the test) stores plain rows instead of rendering each trial."""
    spec, db = setup(n, work)
    with (work / "out.jsonl").open("w") as f:
        for i in range(n):
            body = {"model": "m", "messages": [{"role": "user", "content": f"What is item {i}?"}]}
            f.write(json.dumps({"id": f"b{i}", "custom_id": f"t{i}", "error": None, "response": {
                "status_code": 200, "body": answer("openai", body)}}) + "\n")
    store = Store.open(str(db))
    store.create_run(run_id="r", name="ingest", planned=n, config={}, overrides=[],
                     manifest={}, artifacts={})
    executor = BatchExecutor(spec, Renderer(work), store, "r", frozenset({"oa"}))
    t0 = time.perf_counter()
    calls = executor.calls
    for first in range(0, n, 1024):
        trials, attempts = [], []
        for i in range(first, min(first + 1024, n)):
            if synthetic:
                trial, attempt = synthetic_rows(i)
            else:
                call = calls.call(calls.plan.trial(i), {})
                trial, attempt = calls.pending(call, dumps(calls.line(call)), "http://x/v1",
                                               True)
            trials.append(trial)
            attempts.append(attempt)
        store.add_pending("r", trials, attempts)
    store.add_batch("r", model_alias="oa", api="openai", round=1, indexes=range(n),
                    status="completed", batch_id="batch_1")
    print(json.dumps({"send_side_s": time.perf_counter() - t0}))
    store.close()


def synthetic_rows(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    trial = {"run_id": "r", "idx": i, "key": f"k{i}", "model_alias": "oa", "provider": "openai",
             "model": "m", "prompt": "p", "params_json": "{}", "row_id": f"r{i}",
             "row_json": "{}", "repeat": 0, "messages_json": "[]", "endpoint": "x",
             "cache_key": f"c{i}"}
    attempt = {"run_id": "r", "idx": i, "started_at": datetime.now(UTC).replace(tzinfo=None),
               "duration_ms": 0.0, "url": "http://x/v1", "request_headers_json": "{}",
               "request_body": f'{{"custom_id": "t{i}"}}', "status_code": None,
               "response_body": None, "error": None, "retry_after_ms": None}
    return trial, attempt


def _rss_kb() -> int:
    """Resident memory now, in KB (Linux's /proc; elsewhere the peak so far)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(n: int, synthetic: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="promptlab-ingest-"))
    sent = json.loads(subprocess.run(
        [sys.executable, __file__, str(n), "prepare", str(work), str(synthetic)],
        check=True, capture_output=True, text=True).stdout)
    spec, db = setup(n, work)
    store = Store.open(str(db))
    batch = store.batches("r")[0]
    executor = BatchExecutor(spec, Renderer(work), store, "r", frozenset({"oa"}),
                             client=FileSender(work / "out.jsonl"))  # type: ignore[arg-type]
    # Growth from the memory in use now, not from the peak so far: setting up a small
    # database can peak above a small ingest, which then "grew" by 0.
    base = _rss_kb()

    async def ingest() -> tuple[float, float]:
        executor._client = FileSender(work / "out.jsonl")  # type: ignore[assignment]
        executor._ingest = Ingest("r", executor.calls, executor.stats, executor.scrub, 1,
                                  "readwrite")
        wire = executor._wire_of(batch)
        state = BatchState("batch_1", "completed", True, n, 0, "file-out")
        t0, c0 = time.perf_counter(), time.process_time()
        await ingest_batch(executor, batch, wire, state, set())
        return time.perf_counter() - t0, time.process_time() - c0

    seconds, cpu = asyncio.run(ingest())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = store.progress_of("r").done
    assert len(stored) == n, len(stored)
    print(json.dumps({"lines": n, "seconds": seconds, "rate": n / seconds, "cpu_s": cpu,
                      "peak_rss_mb": peak / 1024, "growth_mb": (peak - base) / 1024,
                      **sent}))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "prepare":
        prepare(int(sys.argv[1]), Path(sys.argv[3]), sys.argv[4] == "True")
    else:
        main(int(sys.argv[1]), "--synthetic" in sys.argv)
