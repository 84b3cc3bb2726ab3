"""The one writer: a thread that commits finished trials in batches, and the safety net that
keeps one value the database cannot take from costing any other record.

Records handed to it are written even when the run is cancelled: closing the writer
drains its queue and joins the thread. (An earlier design wrote from the event loop
with `asyncio.to_thread`; cancelling that await at the end of a run could drop a batch
still waiting for an executor thread, so the writer owns a thread of its own.)

When the database refuses a batch:

- a fault of the database itself (locked past its busy timeout, disk, lost connection:
  `OperationalError` and kin) is waited out and the whole batch tried again, a few times;
- anything else is a value it cannot take: the batch is halved, and halved again, until
  the refused record is alone, and that record is stored as an error row (`error_row`):
  its trial and attempts made storable, and a result with status "error", error_kind
  "unstorable" and a message naming each column and what was done to it. Resume sends it
  again, and nothing else;
- only a database that refuses even an error row, or keeps faulting, makes the writer give
  up: it sets `failed` at once (the runner stops sending calls it could not record), keeps
  what it could not store for one last try at `close()`, and `close()` raises.

`fit_text`, `fit_int` and `fit_float` (promptlab.store.fitting, re-exported here) are the
rules for fitting a value to its column; the runner applies them to what it records, and
`error_row` (promptlab.store.salvage) to every column. `backlog` counts records handed
over and not yet stored: the runner holds back while it is large, so a database slower
than the calls bounds memory.

A big run into an SQLite file writes from a child process (`trial_writer`,
promptlab.store.remote): the same batches, refusals and faults, off this process's GIL.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from promptlab.store.faults import database_fault
from promptlab.store.fitting import fit_float, fit_int, fit_text
from promptlab.store.remote import RemoteWrite
from promptlab.store.salvage import LIMITS, error_row
from promptlab.store.store import Record, Store

__all__ = ["BatchWriter", "LIMITS", "error_row", "fit_float", "fit_int",
           "fit_text", "trial_writer"]

_STOP = object()

# -- the writer thread -------------------------------------------------------------------

class _Refused(Exception):
    """The database would not take these values."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause


class _GaveUp(Exception):
    """The database keeps faulting, or refuses even an error row."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause


BEHIND_BATCHES = 100  # how many batches the writer takes at once when they wait
# What the runner may hand over ahead of the writer in bytes of messages, outputs and
# bodies, whatever the count: records of big prompts and answers fill memory sooner.
BEHIND_BYTES = 48 << 20


def weight(record: Record) -> int:
    """About how many bytes a record holds: its messages, its output, its attempts' bodies
    (0 for a record too broken to weigh: the safety net deals with it)."""
    n = 0
    try:
        for text in (record.trial.get("messages_json"), record.result.get("output")):
            if type(text) is str:
                n += len(text)
        for attempt in record.attempts:
            for text in (attempt.get("request_body"), attempt.get("response_body")):
                if type(text) is str:
                    n += len(text)
    except Exception:
        return n
    return n


class BatchWriter:
    """Commits records in batches on its own thread; see the module docstring.

    `failed` is set the moment the writer gives up (and `error` says why); `written`
    counts records stored, error rows included, `unstorable` the error rows it made, and
    `demoted` those by the status their result had (a run's summary counts them as errors).
    """

    behind_batches = BEHIND_BATCHES

    def __init__(self, write: Callable[[Sequence[Record]], None], batch_size: int = 200,
                 max_wait_s: float = 0.25, *, sleep: Callable[[float], None] = time.sleep,
                 retry_waits_s: Sequence[float] = (0.5, 2.0),
                 on_close: Callable[[], None] | None = None) -> None:
        self._write = write
        self._on_close = on_close
        self._batch_size = batch_size
        # Behind, the writer takes everything waiting, up to this, in one transaction: a
        # commit rewrites every page it touched, and an index keyed by fingerprint
        # scatters them. With the trials' fingerprint index, 10,000 cache hits cost 0.27 s
        # of CPU in commits of 200 and 0.18 s in commits of 5,000; since 0009 (which
        # dropped it) 0.148 and 0.134 s, and 10,000 answers, whose cache entries are keyed
        # by fingerprint, 0.195 and 0.185 s. Caught up, it commits what the runner hands
        # over: batch_size, or 0.25 s. Commits of 1,000, 5,000 and 20,000 rows into a table
        # of 1,000,000 cost 7.9, 6.7 and 5.3 s of CPU per 100,000 rows (each commit writes
        # the pages it dirtied; a bigger one shares more of them); a 1,000,000-call run at
        # zero latency took 294 s behind 5,000 and 253-255 s behind 20,000 (210-222 s since
        # migration 0010 stopped writing a random page of two hash-keyed indexes per row).
        self._most = self.behind_batches * batch_size
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._retry_waits_s = tuple(retry_waits_s)
        self._queue: queue.Queue[object] = queue.Queue()
        self._local: list[Record] = []
        self._local_bytes = 0
        self._kept: list[Record] = []  # not stored after giving up: tried again at close
        self.failed = threading.Event()
        self.error: BaseException | None = None
        self.written = 0
        self.unstorable = 0
        self._handed = self._taken = 0  # records: each counter written by one thread only
        self._handed_bytes = self._taken_bytes = 0  # and their `weight`
        self.demoted: dict[str, int] = {}
        self._thread = threading.Thread(target=self._loop, name="promptlab-writer", daemon=True)
        self._thread.start()

    def put(self, record: Record) -> None:
        """Hand over one record (from one thread only: the event loop's)."""
        self._local.append(record)
        self._local_bytes += weight(record)
        if len(self._local) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        """Pass what was handed over so far to the writer thread (one lock per batch)."""
        if self._local:
            batch, self._local = self._local, []
            size, self._local_bytes = self._local_bytes, 0
            self._handed += len(batch)
            self._handed_bytes += size
            self._queue.put((batch, size))

    @property
    def backlog(self) -> int:
        """Records handed over and not yet stored: the runner waits while it is large."""
        return self._handed - self._taken + len(self._local)

    def behind(self, most: int) -> bool:
        """More than `most` records, or than BEHIND_BYTES of them, wait to be stored."""
        return (self.backlog > most
                or self._handed_bytes - self._taken_bytes + self._local_bytes > BEHIND_BYTES)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._max_wait_s)
            except queue.Empty:
                continue
            batch: list[Record] = []
            size = 0
            item = first
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    assert isinstance(item, tuple)
                    batch.extend(item[0])
                    size += item[1]
                if (len(batch) >= self._most or size > BEHIND_BYTES // 2) and not stopping:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if self.failed.is_set():
                self._kept.extend(batch)  # no use pressing a database that refuses
            elif batch:
                self._store(batch)
            self._taken += len(batch)
            self._taken_bytes += size

    def _store(self, batch: list[Record]) -> None:
        """Store every record, refused ones as error rows; or give up, keeping the rest."""
        todo = [batch]  # a stack of chunks, the next one last
        while todo:
            chunk = todo.pop()
            try:
                try:
                    self._commit(chunk)
                except _Refused as refused:
                    if len(chunk) > 1:
                        half = len(chunk) // 2
                        todo += [chunk[half:], chunk[:half]]
                    else:
                        self._commit_error_row(chunk[0], refused.cause)
            except _GaveUp as gave_up:
                self._give_up(gave_up.cause, [*chunk, *(r for c in reversed(todo) for r in c)])
                return

    def _commit(self, records: Sequence[Record]) -> None:
        waits = iter(self._retry_waits_s)
        while True:
            try:
                self._write(records)
            except Exception as exc:
                if not database_fault(exc):
                    raise _Refused(exc) from None
                wait = next(waits, None)
                if wait is None:
                    raise _GaveUp(exc) from None
                self._sleep(wait)
                continue
            self.written += len(records)
            return

    def _commit_error_row(self, record: Record, refused: BaseException) -> None:
        try:
            whole, bare = error_row(record, refused), error_row(record, refused, attempts=False)
        except Exception as exc:  # a record the net cannot mend: stop, never drop it quietly
            raise _GaveUp(exc) from None
        try:
            self._commit([whole])
        except _Refused:
            try:  # perhaps it is the attempts the database will not take
                self._commit([bare])
            except _Refused as again:
                raise _GaveUp(again.cause) from None
        self.unstorable += 1
        status = str(record.result.get("status"))
        self.demoted[status] = self.demoted.get(status, 0) + 1

    def _give_up(self, cause: BaseException, rest: Iterable[Record]) -> None:
        self._kept.extend(rest)
        self.error = cause
        self.failed.set()

    def close(self) -> None:
        """Write everything handed over so far, then stop. After giving up, tries what it
        kept once more, then raises the database's error (the run stopped early)."""
        self.flush()
        self._queue.put(_STOP)
        self._thread.join()
        try:
            self._last_try()
        finally:
            if self._on_close is not None:
                self._on_close()

    def _last_try(self) -> None:
        if self._kept:
            kept, self._kept = self._kept, []
            self._store(kept)  # in the caller's thread; gives up again if it must
        if self.error is not None:
            lost = len(self._kept)
            self.error.add_note(
                "promptlab: the database would not store finished trials, not even as error "
                "rows, so the run stopped sending calls; "
                + (f"{lost} finished trial(s) could not be stored; " if lost else
                   "everything finished was stored at the last try; ")
                + "resume the run once the database takes writes again.")
            raise self.error


def trial_writer(store: Store, batch_size: int) -> BatchWriter:
    """The writer of a run: into a SQLite file, from a child process once the run has sent
    enough calls to gain by it (`RemoteWrite`), else in this process."""
    url = store.engine.url
    # A file named by its absolute path: the child opens the very file this process has
    # open (not an in-memory database, nor a relative path read from another directory).
    if url.get_backend_name() == "sqlite" and os.path.isabs(url.database or "") and not url.query:
        remote = RemoteWrite(store.url, store.write, store.stored_as)
        return BatchWriter(remote, batch_size, on_close=remote.close)
    return BatchWriter(store.write, batch_size)
