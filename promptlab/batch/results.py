"""Reading an ended batch back: its result files streamed line by line into records.

The files are read in chunks and split into lines here: a reply's lines are capped at
64 MB in all (runner/client.py), and a result file may be gigabytes. Which trials
the batch still owes is a bitmap over its index range (a byte a trial), so
nothing grows with the file but that; the records go to a writer thread in big
transactions (`Store.write_ingested`), and reading waits while the thread is behind, so
memory stays flat however many lines there are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from promptlab.batch.ingest import IngestWriter, index_of
from promptlab.batch.wire import AnthropicBatches, BatchState, OpenAIBatches
from promptlab.errors import UserError
from promptlab.providers.base import BatchItem
from promptlab.runner.client import StreamReply
from promptlab.store.batches import BatchInfo

if TYPE_CHECKING:
    from promptlab.batch.executor import BatchExecutor

__all__ = ["LOST", "BatchFailed", "BatchLost", "ingest_batch"]

WRITE_SIZE = 2000  # records a transaction
MAX_LINE = 64 * 2**20  # bytes of one result line
MAX_BEHIND = 4  # transactions the writer thread may be behind before reading waits
LOST = "lost"  # a batch's status when the server no longer knows it (ours, not the API's)


class BatchFailed(UserError):
    """A batch API call refused, or failing past its retries: the run stops with one line,
    what finished saved, exit 1 (calls were sent: not a user error's 2)."""

    exit_code = 1


class BatchLost(Exception):
    """The server does not know a batch (HTTP 404/410 on it or on its results)."""


async def result_lines(resp: StreamReply, batch_id: str) -> AsyncIterator[bytes]:
    """The lines of a result file as its chunks come in: no cap on the file (a batch's
    output may be gigabytes), only on one line (`MAX_LINE`)."""
    buf = bytearray()
    async for chunk in resp.chunks():
        buf += chunk
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            yield bytes(buf[start:end])
            start = end + 1
        del buf[:start]
        if len(buf) > MAX_LINE:
            raise BatchFailed(f"batch {batch_id}: a result line over {MAX_LINE >> 20} MB; "
                              "not read further")
    if buf:
        yield bytes(buf)


async def ingest_batch(ex: BatchExecutor, batch: BatchInfo,
                       wire: OpenAIBatches | AnthropicBatches, state: BatchState,
                       done: set[int]) -> set[int]:
    """Stream the results into records; returns the trials to send again."""
    lo, hi = min(batch.indexes), max(batch.indexes)
    owed = bytearray(hi - lo + 1)
    for i in batch.indexes:
        if i not in done:
            owed[i - lo] = 1
    for later in ex.store.batches(ex.run_id):  # already sent again (a resume)
        if later.number > batch.number and later.live:
            for i in later.indexes:
                if lo <= i <= hi:
                    owed[i - lo] = 0
    url = ex.scrub(wire.url_of(state.batch_id)) or ""
    provider = ex.calls.batch_lines[batch.model_alias]
    model = next(m for m in ex.spec.models if m.alias == batch.model_alias)
    ingest = ex._ingest
    writer = IngestWriter(ex.store.write_ingested, WRITE_SIZE)
    lost = state.error if state.status == LOST else None
    try:
        for request in wire.results(state) if lost is None else []:
            async with ex._client.stream(request, ex.spec.run.timeout_s) as resp:
                if resp.status in (404, 410):
                    lost = (f"batch {state.batch_id} lost: its results are gone "
                            f"(HTTP {resp.status} at {ex.scrub(request.url)})")
                    await asyncio.to_thread(ex.store.update_batch, ex.run_id, batch.number,
                                            status=LOST, error=lost)
                    break
                if resp.status >= 400:
                    body = await resp.read()
                    text = " ".join(body[:200].decode("utf-8", "replace").split())
                    raise BatchFailed(f"batch {state.batch_id}: reading results: HTTP "
                                      f"{resp.status}: {ex.scrub(text)}")
                n = 0
                async for line in result_lines(resp, state.batch_id):
                    if not line.strip():
                        continue
                    raw = line.decode("utf-8", "replace")
                    item = provider.parse_batch_result(model, json.loads(raw))
                    idx = index_of(item.custom_id)
                    if idx is None or not lo <= idx <= hi or not owed[idx - lo]:
                        continue
                    owed[idx - lo] = 0
                    writer.put(ingest.take(idx, item, raw, url))
                    n += 1
                    if n % WRITE_SIZE == 0:
                        while writer.backlog > MAX_BEHIND:
                            await asyncio.sleep(0.002)
        # Items the results never mention: the batch ended before them.
        reason = lost or state.error or f"batch {state.status} before this request ran"
        expired = state.status in ("expired", "ended", "completed")
        kind = LOST if lost else "expired" if expired else state.status
        for pos in range(len(owed)):
            if owed[pos]:
                item = BatchItem(f"t{lo + pos}", None, None, kind, reason,
                                 retryable=expired or lost is not None)
                writer.put(ingest.take(lo + pos, item, "", url))
        numbers = await asyncio.to_thread(ex.store.attempt_numbers, ex.run_id,
                                          sorted(ingest.deferred))
        retry, records = ingest.settle(numbers)
        for record in records:
            writer.put(record)
    finally:
        # Every record of this batch committed before the batch is marked read.
        await asyncio.shield(asyncio.to_thread(writer.close))
    return retry
