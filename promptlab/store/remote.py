"""Storing finished trials from a process of their own, off the runner's GIL.

A run of many calls at low latency keeps its event loop's thread busy; the writer thread
that commits its trials (`BatchWriter`) takes the GIL for every row it binds and every
batch it builds, and each time it does the event loop waits. `RemoteWrite` is a drop-in
for `Store.write` that, once the run has written `START_AFTER_CALLS` calls, starts a
child process (``python -m promptlab.store.remote``) with its own connection to the same
SQLite file and hands it each batch, pickled, waiting for its answer on the writer
thread, where the GIL is free while it waits. Measured on the 2-core machine, 10,000
calls at zero latency, whole command: 6.15-6.69 s against 6.85-7.10 s (4 paired rounds;
docs/architecture.md has the rest).

The contract is `Store.write`'s: all of a batch or none, and the database's refusal
raised. The child answers None (stored), or what the database said, raised here as a
`WriteFailed`: a fault of the database (waited out and tried again by `BatchWriter`) or
a value it would not take (split until the record is alone). Nothing is lost when the
child is: if it cannot start, or dies, every batch from then on is written in this
process, and the batch it held is checked first, so that a batch it committed before
dying is not written twice.

The child runs in a session of its own (a Ctrl-C at the terminal, or a ``kill`` of the
run's process group, is the run's to handle) and ignores SIGINT and SIGTERM: it stops when
this process closes its end of the socket, after the batch it is writing, so the runner's
last batches are always its to write. It imports nothing from the working directory
(``-P``) and this promptlab first; it refuses to write (and the writing stays here) when
its promptlab speaks another protocol or schema than this one, or when the file at the
path is no longer the one this process opened, and it never migrates. A batch it has not
answered within ANSWER_TIMEOUT_S (a child stopped or wedged) is written here instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from promptlab.store.database import SCHEMA_HEAD
from promptlab.store.faults import WriteFailed
from promptlab.store.store import Record

__all__ = ["RemoteWrite", "WriteFailed"]

# The directory this promptlab is imported from: first on the child's path.
_HOME = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

START_TIMEOUT_S = 60.0  # for the child to start and open the database (~0.3 s here)
# Calls sent (records with attempts) before the child is started: a run that sends fewer,
# or whose trials the cache answers (their rows are copied by the database, little work
# for the GIL), never pays for the child's start (~0.25 s of CPU).
START_AFTER_CALLS = 1000
# What the parent and the child say to each other; a child from another version of
# promptlab (installed while a run went on) refuses to serve, and the writing stays here.
PROTOCOL = 1
# For the child's answer to one batch: SQLite waits 10 s for a lock, a batch of 20,000
# records takes a second or two; a child stopped or wedged past this is given up (killed),
# and the batch written here, checked first.
ANSWER_TIMEOUT_S = 120.0


class _Channel:
    """Length-prefixed pickles over a socket. Sent with MSG_NOSIGNAL: a child gone is an
    OSError here, never a SIGPIPE (a host that set SIGPIPE to its default would die)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send_bytes(self, payload: bytes) -> None:
        self._sock.sendall(struct.pack("!Q", len(payload)) + payload, socket.MSG_NOSIGNAL)

    def send(self, value: object) -> None:
        self.send_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def _exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self._sock.recv(min(n - len(out), 1 << 20))
            if not chunk:
                raise EOFError("the other end closed")
            out += chunk
        return bytes(out)

    def recv_bytes(self) -> bytes:
        (size,) = struct.unpack("!Q", self._exactly(8))
        return self._exactly(size)

    def recv(self) -> Any:
        return pickle.loads(self.recv_bytes())

    def poll(self, timeout_s: float) -> bool:
        """Whether something (or the end) can be read within `timeout_s`."""
        return bool(select.select([self._sock], [], [], timeout_s)[0])

    def close(self) -> None:
        self._sock.close()


class RemoteWrite:
    """`Store.write` from a child process, started once `after_calls` calls were written
    (the batches before it, and while it starts, are written here by `local`); `local`
    writes here again if the child is lost, after `stored` (run id, idx, finished at ->
    already stored?) has said which records of the batch it held got committed. Close it
    once the writer is closed."""

    def __init__(self, url: str, local: Callable[[Sequence[Record]], None],
                 stored: Callable[[Sequence[Record]], list[bool]], *,
                 after_calls: int | None = None) -> None:
        self._url, self._local, self._stored = url, local, stored
        self._calls_left = START_AFTER_CALLS if after_calls is None else after_calls
        self._state = "idle"  # -> starting -> there; -> gone at any time
        self._unsure = False  # the child went mid-write: what did it commit?
        self._conn: _Channel | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._file = _identity(url)  # the file this process opened, for the child to check
        self.refused: str | None = None  # why the child would not write, if it said

    @property
    def remote(self) -> bool:
        """Writing through the child (False: here, before it started or since it was lost)."""
        return self._state == "there"

    def __call__(self, records: Sequence[Record]) -> None:
        if self._state == "idle":
            self._calls_left -= sum(1 for r in records if r.attempts)
            if self._calls_left <= 0:
                self.start()
        if self._state == "starting":
            self.check_started()
        if self._state != "there":
            if self._unsure:  # what the child committed before it went stays (the batch it
                # held may come again split, or retried: every batch is checked from then on)
                done = self._stored(records)
                records = [r for r, d in zip(records, done, strict=True) if not d]
            self._local(records)
            return
        assert self._conn is not None
        try:
            payload = pickle.dumps(list(records), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a value that cannot travel cannot be stored as it is
            raise WriteFailed(f"{type(exc).__name__}: {exc}", fault=False) from None
        try:
            self._conn.send_bytes(payload)
            if not self._conn.poll(ANSWER_TIMEOUT_S):
                raise TimeoutError("the child did not answer")
            answer = self._conn.recv()
        except (OSError, EOFError):
            self._gone()
            self._unsure = True
            self(records)  # here, but for what the child committed
            return
        if answer is not None:
            said, fault = answer
            raise WriteFailed(said, fault=fault)

    def start(self) -> None:
        """Start the child (it opens the database while this process goes on writing)."""
        if self._state != "idle":
            return
        self._state = "starting"
        self._started_at = time.monotonic()
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                # -P: not the working directory first on its path (a project's random.py
                # would be imported, and run); this promptlab first, whatever the path is.
                [sys.executable, "-P", "-m", "promptlab.store.remote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                    [_HOME, *filter(None, [os.environ.get("PYTHONPATH")])])},
                start_new_session=True)  # a Ctrl-C at the terminal is the run's to handle
            self._conn = _Channel(ours)
            self._conn.send((PROTOCOL, SCHEMA_HEAD, self._url, self._file))
        except Exception:  # no child here (pass_fds is POSIX's): the writing stays here
            ours.close()
            self._gone()
        finally:
            theirs.close()

    def check_started(self, wait_s: float = 0.0) -> None:
        """Whether the child has opened the database, waiting up to `wait_s`; given up after
        START_TIMEOUT_S (a `sys.executable` that is not Python) or when it could not (its
        reason is kept in `refused`)."""
        assert self._conn is not None
        try:
            if self._conn.poll(wait_s):
                answer = self._conn.recv()
                if answer is None:
                    self._state = "there"
                else:
                    self.refused = str(answer[0])
                    self._gone()
                return
        except (OSError, EOFError):
            self._gone()
            return
        if time.monotonic() - self._started_at > START_TIMEOUT_S:
            self._gone()

    def _gone(self) -> None:
        self._state = "gone"
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def close(self) -> None:
        """Let the child finish and go (it stops at end of input); kill it if it hangs, or
        if it is still starting (it holds nothing: a run that ends then does not wait)."""
        if self._state == "starting":
            self._gone()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


def _serve(fd: int) -> None:
    """The child: open the database named first and say None (ready), then write each batch
    and answer None (stored) or (what the database said, whether it is a fault of the
    database)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    from promptlab.store.database import open_engine
    from promptlab.store.faults import database_fault, said
    from promptlab.store.store import Store

    conn = _Channel(socket.socket(fileno=fd))
    try:
        protocol, head, url, file = conn.recv()
        if (protocol, head) != (PROTOCOL, SCHEMA_HEAD):
            raise RuntimeError(f"protocol {protocol} and schema {head} asked, this promptlab "
                               f"speaks {PROTOCOL} at schema {SCHEMA_HEAD}")
        if _identity(url) != file:
            raise RuntimeError("the database file is no longer the one the run opened")
        store = Store(open_engine(url, migrate_schema=False, must_exist=True))
    except Exception as exc:  # anything but None: the writing stays in the parent
        with contextlib.suppress(OSError):
            conn.send((said(exc), True))
        return
    try:
        conn.send(None)
        while True:
            payload = conn.recv_bytes()
            answer: Any = None
            try:
                store.write(pickle.loads(payload))
            except Exception as exc:
                answer = (said(exc), database_fault(exc))
            conn.send(answer)
    except (EOFError, OSError):  # the parent closed its end (or went): done
        return
    finally:
        store.close()


def _identity(url: str) -> tuple[int, int] | None:
    """The SQLite file's device and inode (None: not there, or not a file URL)."""
    try:
        st = os.stat(url.removeprefix("sqlite:///"))
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
    os._exit(0)
