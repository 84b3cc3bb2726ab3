"""Child process of `run.py --batch-ingest`: ingest an N-line OpenAI batch output file into
a new SQLite database the way the batch executor does (line by line, records through the
writer thread); prints JSON with the rate and the peak memory."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from promptlab.batch.executor import BatchExecutor
from promptlab.batch.wire import BatchState
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
    """A Sender whose every stream is the result file on disk, read line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stream(self, request, timeout):  # type: ignore[no-untyped-def]
        path = self.path

        class Reply:
            status = 200
            headers: dict[str, str] = {}

            async def lines(self):  # type: ignore[no-untyped-def]
                with path.open() as f:
                    for line in f:
                        yield line

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


def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="promptlab-ingest-"))
    model = ModelSpec("oa", "openai", "m", "http://127.0.0.1:9/v1", input_per_mtok=1.0,
                      output_per_mtok=2.0)
    rows = tuple(Row(f"r{i}", i, {"n": i}) for i in range(n))
    spec = ExperimentSpec("ingest", (model,), (PromptSpec("p", (MessageSpec(
        "user", "What is item {{ n }}?"),)),), DatasetSpec("d", None, rows),
        GridSpec({}), RunSettings(batch=True, batch_size=1000))
    results = work / "out.jsonl"
    with results.open("w") as f:
        for i in range(n):
            body = {"model": "m", "messages": [{"role": "user", "content": f"What is item {i}?"}]}
            f.write(json.dumps({"id": f"b{i}", "custom_id": f"t{i}", "error": None, "response": {
                "status_code": 200, "body": answer("openai", body)}}) + "\n")
    store = Store.open(str(work / "db.sqlite"))
    store.create_run(run_id="r", name="ingest", planned=n, config={}, overrides=[],
                     manifest={}, artifacts={})
    number = store.add_batch("r", model_alias="oa", api="openai", round=1,
                             indexes=range(n), status="completed", batch_id="batch_1")
    batch = store.batches("r")[0]
    assert batch.number == number
    executor = BatchExecutor(spec, Renderer(work), store, "r", frozenset({"oa"}),
                             client=FileSender(results))  # type: ignore[arg-type]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def ingest() -> float:
        executor._client = FileSender(results)  # type: ignore[assignment]
        from promptlab.batch.ingest import Ingest
        from promptlab.store.writer import BatchWriter

        executor._writer = BatchWriter(store.write, 1000)
        executor._ingest = Ingest("r", executor.calls, executor.recorder, executor.scrub, {},
                                  1)
        wire = executor._wire_of(batch)
        state = BatchState("batch_1", "completed", True, n, 0, "file-out")
        t0 = time.perf_counter()
        await executor._ingest_batch(batch, wire, state, set())
        await asyncio.to_thread(executor._writer.close)
        return time.perf_counter() - t0

    seconds = asyncio.run(ingest())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = store.progress_of("r")[0]
    assert len(stored) == n, len(stored)
    print(json.dumps({"lines": n, "seconds": seconds, "rate": n / seconds,
                      "peak_rss_mb": peak / 1024, "growth_mb": (peak - base) / 1024}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
