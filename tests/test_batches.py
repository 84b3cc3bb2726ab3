from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from promptlab.store import Record
from promptlab.store.writer import BatchWriter


def rec(i: int) -> Record:
    return Record({"idx": i}, {"idx": i})


def test_close_writes_everything_handed_over_even_when_writes_are_slow() -> None:
    written: list[int] = []

    def slow(batch: Sequence[Record]) -> None:
        time.sleep(0.01)
        written.extend(r.trial["idx"] for r in batch)

    w = BatchWriter(slow, batch_size=7, max_wait_s=0.01)
    for i in range(100):
        w.put(rec(i))
    w.close()
    assert written == list(range(100))


def test_a_failed_batch_is_retried_once_and_never_written_twice() -> None:
    written: list[int] = []
    calls = {"n": 0}
    lock = threading.Lock()

    def flaky(batch: Sequence[Record]) -> None:
        with lock:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("database is locked")
            written.extend(r.trial["idx"] for r in batch)

    w = BatchWriter(flaky, batch_size=3, max_wait_s=0.01)
    for i in range(10):
        w.put(rec(i))
        time.sleep(0.005)
    w.close()
    assert sorted(written) == list(range(10)) and len(written) == 10


def test_a_write_that_keeps_failing_raises_at_close() -> None:
    def broken(batch: Sequence[Record]) -> None:
        raise RuntimeError("disk full")

    w = BatchWriter(broken, batch_size=3, max_wait_s=0.01)
    w.put(rec(1))
    with pytest.raises(RuntimeError, match="disk full"):
        w.close()
