"""The cache's index (`cache_entries`): the stored fresh ok results that answer a request
fingerprint, and when a run's results go in.

Triggers on results keep the index in the writing transaction, whatever code writes them
(migration 0009), with one exception: a run being sent (`Session`) has a row in
`cache_pending` (0010), the triggers pass over its results, and they go in when the run
ends, sorted by fingerprint, in one statement (`fill_cache`). One by one, each went to a
random page of an index as big as every stored result: a 1,000,000-call run's last tenth
ran at 84% of its first tenth's rate.

So a run's answers serve other runs once it ends. A run whose process died (kill -9, a
lost machine) never ends: the first lookup of another process fills the index from it
(`settle_cache`), and a resume of it ends it again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError

from promptlab.store.ownership import Owner, is_alive, this_host
from promptlab.store.tables import CacheEntry, CachePending, Run

__all__ = ["CacheIndex"]

# Sorted by fingerprint, so the index's pages are written in order, each once.
_FILL = text(
    "INSERT INTO cache_entries (cache_key, run_id, idx, finished_at) "
    "SELECT t.cache_key, r.run_id, r.idx, r.finished_at FROM results r "
    "JOIN trials t ON t.run_id = r.run_id AND t.idx = r.idx "
    "WHERE r.run_id = :run_id AND r.status = 'ok' AND r.cacheable ORDER BY t.cache_key "
    "ON CONFLICT (cache_key, run_id, idx) DO UPDATE SET finished_at = excluded.finished_at")


class CacheIndex:
    """A mixin of `Store`: cache lookups, and the index filled from runs that ended."""

    engine: Engine
    _settled: bool = False
    _settling: threading.Lock  # made by Store.__init__

    def cache_sources(self, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
        """For each of these request fingerprints the cache answers, the stored fresh ok
        result that answers it (run id, idx): the newest of them. The index holds sources
        only: a lookup costs the same however many cached re-runs repeated a request."""
        if not keys:
            return {}
        self.settle_cache()
        # Oldest first, so the newest is the one left per key.
        stmt = (select(CacheEntry.cache_key, CacheEntry.run_id, CacheEntry.idx)
                .where(CacheEntry.cache_key.in_(list(set(keys))))
                .order_by(CacheEntry.finished_at, CacheEntry.run_id, CacheEntry.idx))
        with self.engine.connect() as conn:
            return {key: (run_id, idx) for key, run_id, idx in conn.execute(stmt)}

    def cached_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these fingerprints the cache would answer (`lookup_cache`, keys only)."""
        if not keys:
            return set()
        self.settle_cache()
        stmt = (select(CacheEntry.cache_key).distinct()
                .where(CacheEntry.cache_key.in_(list(set(keys)))))
        with self.engine.connect() as conn:
            return set(conn.execute(stmt).scalars())

    def cache_entries(self, limit: int) -> set[str] | None:
        """Every fingerprint the cache would answer, if there are at most `limit` of them.

        None when there are more: then look keys up a chunk at a time (`cached_keys`).
        """
        self.settle_cache()
        stmt = select(CacheEntry.cache_key).distinct().limit(limit + 1)
        with self.engine.connect() as conn:
            keys = set(conn.execute(stmt).scalars())
        return keys if len(keys) <= limit else None

    def fill_cache(self, conn: Connection, run_id: str) -> bool:
        """In `conn`'s transaction: if the run is pending, its fresh ok results into the
        index and its pending row gone (the triggers index its results from then on)."""
        if not conn.execute(delete(CachePending).where(CachePending.run_id == run_id)).rowcount:
            return False
        if conn.dialect.name == "postgresql":
            # Waits for writes in flight (a shard's last commit) and holds new ones until
            # this commits: a result whose trigger saw the pending row but that committed
            # after _FILL's snapshot would be in neither. SQLite writers take turns anyway.
            conn.execute(text("LOCK TABLE results IN SHARE MODE"))
        conn.execute(_FILL, {"run_id": run_id})
        return True

    def settle_cache(self) -> list[str]:
        """Fill the index from every pending run whose owner is gone (once per store, at
        its first lookup); returns their ids. A run still sending is left to its owner; a
        database this store may not write to (or one locked past the busy timeout) is
        left to the next process that looks up."""
        if self._settled:
            return []
        with self._settling:  # lookups at once (a lane per endpoint) wait for the first
            if self._settled:
                return []
            try:
                return self._settle()
            finally:
                self._settled = True

    def _settle(self) -> list[str]:
        stmt = (select(Run.id, Run.owner_host, Run.owner_pid, Run.owner_token,
                       Run.heartbeat_at).join(CachePending, CachePending.run_id == Run.id))
        try:
            with self.engine.connect() as conn:
                pending = list(conn.execute(stmt))
            now = datetime.now(UTC).replace(tzinfo=None)
            host = this_host()
            settled = []
            for row in pending:
                owner = Owner(row.owner_host, row.owner_pid, row.owner_token, row.heartbeat_at)
                if is_alive(owner, now, host=host):
                    continue
                with self.engine.begin() as conn:
                    # The owner as seen, or no fill: first, so a resume taking the run over
                    # waits for this transaction (and then makes the run pending again).
                    same = conn.execute(
                        update(Run).where(Run.id == row.id,
                                          Run.owner_token.is_not_distinct_from(owner.token),
                                          Run.heartbeat_at.is_not_distinct_from(
                                              owner.heartbeat_at))
                        .values(heartbeat_at=Run.heartbeat_at)).rowcount
                    if same and self.fill_cache(conn, row.id):
                        settled.append(row.id)
            return settled
        except DBAPIError:  # a file or a role that may only read: lookups go on without
            return []
