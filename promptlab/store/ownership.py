"""Who is running a run: its owner (host, pid, a token) and the owner's heartbeat.

The process that sends a run owns it. `Store.create_run` records the owner; while the
session runs, it calls `beat` every `HEARTBEAT_S` seconds (one UPDATE); at the end it
`release`s the run with its final status. `resume` takes a run over with `claim`, which
refuses while the owner lives and is atomic: one UPDATE ... WHERE the owner is still the
one that was seen dead, so of two resumes at once exactly one goes.

An owner is alive when, on this host, its pid exists and its heartbeat is fresh; on
another host, when its heartbeat is fresh (younger than `STALE_AFTER_S`, three beats;
hosts' clocks are assumed to agree to within a few seconds).

A run whose stored status is ``running`` but whose owner is dead (kill -9, a lost
machine) reads as ``interrupted``. That is computed when the run is read, not written:
a killed process cannot mark its own run, reading commands stay read-only, and the
answer is right whenever it is asked. The stored ``running`` (and the owner) remain the
record of what happened; the next owner overwrites them.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from promptlab.errors import UserError
from promptlab.store.queries import RunInfo, RunQueries
from promptlab.store.tables import CachePending, Run

__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "Owner", "RunOwnership", "RunStillRunning",
           "is_alive", "new_token", "pid_exists", "this_host"]

HEARTBEAT_S = 5.0
STALE_AFTER_S = 3 * HEARTBEAT_S


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def this_host() -> str:
    return socket.gethostname()


def new_token() -> str:
    """A fresh owner token: one per process taking a run, so a takeover is visible."""
    return secrets.token_hex(16)


def pid_exists(pid: int) -> bool:
    """Whether a live (non-zombie) process has this pid on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


@dataclass(frozen=True)
class Owner:
    host: str | None
    pid: int | None
    token: str | None
    heartbeat_at: datetime | None

    def age_s(self, now: datetime) -> float | None:
        """Seconds since the last heartbeat."""
        if self.heartbeat_at is None:
            return None
        return max(0.0, (now - self.heartbeat_at).total_seconds())


def is_alive(owner: Owner, now: datetime, *, host: str | None = None,
             pid_exists: Callable[[int], bool] = pid_exists,
             stale_after_s: float = STALE_AFTER_S) -> bool:
    """Same host: the pid exists and the heartbeat is fresh. Other host: a fresh heartbeat."""
    age = owner.age_s(now)
    if age is None or age > stale_after_s:
        return False
    if owner.host == (host or this_host()):
        return owner.pid is not None and pid_exists(owner.pid)
    return True


class RunStillRunning(UserError):
    """`resume` of a run whose owner is alive."""

    def __init__(self, run_id: str, owner: Owner, now: datetime) -> None:
        super().__init__(f"run {run_id} is still running in pid {owner.pid} on {owner.host} "
                         f"(heartbeat {owner.age_s(now) or 0:.0f}s ago); wait for it or "
                         "stop it")


def _owner(row: Any) -> Owner:
    return Owner(row.owner_host, row.owner_pid, row.owner_token, row.heartbeat_at)


class RunOwnership(RunQueries):
    refresh_cells: Callable[..., bool]  # CellQueries (store/cells.py)
    fill_cache: Callable[[Connection, str], bool]  # CacheIndex (store/cacheindex.py)
    """A mixin of `Store`: run owners and heartbeats, and run statuses as they are now."""

    def _state(self, run_id: str) -> tuple[str, Owner]:
        stmt = select(Run.status, Run.owner_host, Run.owner_pid, Run.owner_token,
                      Run.heartbeat_at).where(Run.id == run_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise UserError(f"run '{run_id}' not found; list runs with 'promptlab runs'")
        return str(row.status), _owner(row)

    def owner_of(self, run_id: str) -> Owner:
        return self._state(run_id)[1]

    def check_free(self, run_id: str) -> None:
        """Raise `RunStillRunning` while the run's owner lives."""
        status, owner = self._state(run_id)
        now = _now()
        if status == "running" and is_alive(owner, now):
            raise RunStillRunning(run_id, owner, now)

    def take_over(self, run_id: str, seen: Owner, token: str) -> bool:
        """Make this process the owner, status running, if the owner is still `seen`
        (compared on token and heartbeat, so a beat in between wins); atomic."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(Run).where(Run.id == run_id,
                                  Run.owner_token.is_not_distinct_from(seen.token),
                                  Run.heartbeat_at.is_not_distinct_from(seen.heartbeat_at))
                .values(status="running", finished_at=None, owner_host=this_host(),
                        owner_pid=os.getpid(), owner_token=token, heartbeat_at=_now()))
            if result.rowcount == 1 and conn.execute(select(CachePending.run_id).where(
                    CachePending.run_id == run_id)).first() is None:
                # Its results go into the cache's index when it ends again, not one by one
                # (what it stored before is there already: the fill skips those).
                conn.execute(insert(CachePending).values(run_id=run_id))
        return result.rowcount == 1

    def claim(self, run_id: str) -> str:
        """Take a run over for this process; returns the new owner token. Raises
        `RunStillRunning` while the owner lives (also when another resume got there first)."""
        token = new_token()
        for _ in range(3):
            status, owner = self._state(run_id)
            now = _now()
            if status == "running" and is_alive(owner, now):
                raise RunStillRunning(run_id, owner, now)
            if self.take_over(run_id, owner, token):
                return token
        raise UserError(f"run {run_id} kept changing while this process tried to take it "
                        "over; see 'promptlab show' and try again")

    def beat(self, run_id: str, token: str) -> bool:
        """The owner's heartbeat; False when the run has been taken over."""
        with self.engine.begin() as conn:
            result = conn.execute(update(Run).where(Run.id == run_id, Run.owner_token == token)
                                  .values(heartbeat_at=_now()))
        return result.rowcount == 1

    def release(self, run_id: str, token: str, status: str) -> bool:
        """Record the final status if this process still owns the run, and its results in
        the cache's index if they wait for its end; False if it is not ours."""
        now = _now()
        with self.engine.begin() as conn:
            result = conn.execute(update(Run).where(Run.id == run_id, Run.owner_token == token)
                                  .values(status=status, finished_at=now, heartbeat_at=now))
        if result.rowcount == 1:
            # A transaction of its own (1,000,000 results: 2 s), so a failure cannot take
            # the final status with it; the run then stays pending for `settle_cache`.
            with self.engine.begin() as conn:
                self.fill_cache(conn, run_id)
        self.refresh_cells(run_id)  # the report cells (store/cells.py), for fast reports
        return result.rowcount == 1

    # -- reads, with the status as it is now -----------------------------------------------

    def _as_now(self, infos: list[RunInfo]) -> list[RunInfo]:
        running = [i.id for i in infos if i.status == "running"]
        if not running:
            return infos
        stmt = select(Run.id, Run.owner_host, Run.owner_pid, Run.owner_token,
                      Run.heartbeat_at).where(Run.id.in_(running))
        with self.engine.connect() as conn:
            owners = {row.id: _owner(row) for row in conn.execute(stmt)}
        now = _now()
        host = this_host()
        dead = {run_id for run_id, o in owners.items() if not is_alive(o, now, host=host)}
        return [replace(i, status="interrupted") if i.id in dead else i for i in infos]

    def run(self, run_id: str) -> RunInfo:
        return self._as_now([super().run(run_id)])[0]

    def runs(self, name: str | None = None, status: str | None = None, limit: int = 50,
             since: datetime | None = None, until: datetime | None = None,
             sweep: str | None = None) -> list[RunInfo]:
        """Runs, newest first, filtered; a run whose owner died reads as interrupted."""
        if status not in ("running", "interrupted"):
            return self._as_now(super().runs(name, status, limit, since, until, sweep))
        # A stored 'running' may be either: read both, decide, then filter and limit.
        found = super().runs(name, "running", 1_000_000, since, until, sweep)
        if status == "interrupted":
            found += super().runs(name, "interrupted", limit, since, until, sweep)
        now = sorted(self._as_now(found), key=lambda i: i.created_at, reverse=True)
        return [i for i in now if i.status == status][:limit]
