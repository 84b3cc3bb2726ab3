"""The one writer: a thread that commits finished trials in batches.

Records handed to it are written even when the run is cancelled: closing the writer
drains its queue and joins the thread. (An earlier design wrote from the event loop
with `asyncio.to_thread`; cancelling that await at the end of a run could drop a batch
still waiting for an executor thread, so the writer owns a thread of its own.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

from promptlab.store.store import Record

__all__ = ["BatchWriter"]

_STOP = object()


class BatchWriter:
    def __init__(self, write: Callable[[Sequence[Record]], None], batch_size: int = 200,
                 max_wait_s: float = 0.25) -> None:
        self._write = write
        self._batch_size = batch_size
        self._max_wait_s = max_wait_s
        self._queue: queue.Queue[object] = queue.Queue()
        self._local: list[Record] = []
        self._failed: list[Record] = []
        self.error: BaseException | None = None
        self.written = 0
        self._thread = threading.Thread(target=self._loop, name="promptlab-writer", daemon=True)
        self._thread.start()

    def put(self, record: Record) -> None:
        """Hand over one record (from one thread only: the event loop's)."""
        self._local.append(record)
        if len(self._local) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        """Pass what was handed over so far to the writer thread (one lock per batch)."""
        if self._local:
            batch, self._local = self._local, []
            self._queue.put(batch)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._max_wait_s)
            except queue.Empty:
                continue
            batch: list[Record] = []
            item = first
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    assert isinstance(item, list)
                    batch.extend(item)
                if len(batch) >= self._batch_size and not stopping:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._flush(batch)

    def _flush(self, batch: list[Record]) -> None:
        if not batch:
            return
        todo = self._failed + batch
        i = 0
        try:
            while i < len(todo):
                chunk = todo[i:i + self._batch_size]
                self._write(chunk)
                i += len(chunk)
                self.written += len(chunk)
            self._failed = []
        except Exception as exc:  # kept, retried with the next batch, reported at close
            self._failed = todo[i:]
            self.error = exc

    def close(self) -> None:
        """Write everything handed over so far, then stop; raises a write that kept failing."""
        self.flush()
        self._queue.put(_STOP)
        self._thread.join()
        if self._failed:
            self._write(self._failed)  # one last try, in the caller's thread: raises
            self._failed = []
