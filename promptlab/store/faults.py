"""What a database said when it would not store a batch, and whether it was a fault of the
database (worth waiting out) or of the values (worth splitting the batch): the writer's
rules, the same for a batch written here and one written by the child process."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

__all__ = ["WriteFailed", "database_fault", "said"]


class WriteFailed(Exception):
    """A batch the child process's database refused: `fault` when the database itself
    failed, else a value it would not take; `said` is what it said (`said`)."""

    def __init__(self, said: str, *, fault: bool) -> None:
        super().__init__(said)
        self.said = said
        self.fault = fault


def said(exc: BaseException) -> str:
    """What the database said, in a line: the driver's error type and its first line."""
    if isinstance(exc, WriteFailed):  # said in the writing process already
        return exc.said
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first[:300]}"


def database_fault(exc: BaseException) -> bool:
    """A fault of the database, not of the values: worth waiting out, never worth splitting."""
    if isinstance(exc, WriteFailed):
        return exc.fault
    if isinstance(exc, OperationalError | DisconnectionError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
