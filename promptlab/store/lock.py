"""A lock between processes, held on a file beside what it guards (POSIX ``flock``)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["file_lock"]


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`, waiting for any other holder; the file is created
    for the purpose and removed on release.

    Removing it is safe: a process that was waiting on the removed file finds, once it holds
    the lock, that `path` no longer names the file it locked, and starts over on the new one.
    The kernel drops the lock if the holder dies, so a crash never leaves it stuck.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                current = os.stat(path)
                if (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                    break
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)  # while still holding it: see the docstring
        finally:
            os.close(fd)
