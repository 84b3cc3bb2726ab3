"""`Store`: the one object through which promptlab reads and writes its database.

Writes are here: runs, artifacts, and batches of finished trials. A batch is one
transaction with one executemany per table, so a run interrupted at any point leaves
every committed trial whole (its trial row, attempts and result together). Reads come
from the mixins: `RunQueries` (runs, results, scores), `TrialQueries` (single trials,
export, cache candidates) and `ReportQueries` (grouped rows for reports); `RunOwnership`
records which process runs a run (owner, heartbeat) and reads statuses as they are now.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update

from promptlab.canonical import sha256_hex
from promptlab.store.batches import BatchQueries
from promptlab.store.browse import BrowseQueries
from promptlab.store.bulk import executemany
from promptlab.store.cacheindex import CacheIndex
from promptlab.store.cells import CellQueries
from promptlab.store.database import open_engine, resolve_url
from promptlab.store.grouping import ReportQueries
from promptlab.store.ingest import BatchRecording
from promptlab.store.merge import StoreMerge
from promptlab.store.ownership import RunOwnership, this_host
from promptlab.store.queries import RunQueries
from promptlab.store.ratings import Curation
from promptlab.store.replace import copy_results, insert_results
from promptlab.store.searches import SearchQueries
from promptlab.store.tables import (
    Artifact,
    Attempt,
    CachePending,
    Result,
    Run,
    RunArtifact,
    Score,
    StoredTrial,
)
from promptlab.store.trials import TrialQueries

__all__ = ["Prior", "Record", "Store", "utcnow"]

_REKEY = (update(StoredTrial).where(StoredTrial.run_id == bindparam("r"),
                                    StoredTrial.idx == bindparam("i"))
          .values(cache_key=bindparam("k")))


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Record:
    """A finished trial as rows: the trial, every attempt, and the result."""

    trial: dict[str, Any]
    result: dict[str, Any]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    trial_exists: bool = False  # resuming a trial whose error result was cleared
    # A cache hit: its result is a copy of this stored one (run id, idx), made in the
    # database (`copy_results`); `result` holds only what is its own.
    copy_of: tuple[str, int] | None = None


@dataclass(frozen=True)
class Prior:
    """What a run holds from before a resume: its finished trials, the attempts stored per
    unfinished trial, what its ok results cost, and the calls sent so far (trials with an
    attempt: a call's retries are one). A new run has none of it."""

    done: frozenset[int] = frozenset()
    started: dict[int, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    calls: int = 0


class Store(RunOwnership, RunQueries, TrialQueries, ReportQueries, BrowseQueries, Curation,
            StoreMerge, BatchQueries, BatchRecording, CellQueries, SearchQueries, CacheIndex):
    """A database of runs. Open one with `Store.open(path_or_url)`; close it when done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._settling = threading.Lock()  # (cacheindex.py)

    @classmethod
    def open(cls, db: str | None = None, *, configured: str | None = None,
             read_only: bool = False, must_exist: bool = False) -> Store:
        """Open (and migrate) the database: `db` is a path or SQLAlchemy URL; without one,
        $PROMPTLAB_DB, then `configured` (the experiment's ``db``), then ./results.db.
        ``read_only`` opens it for reading alone: nothing is created, migrated or changed."""
        return cls(open_engine(resolve_url(db, configured), read_only=read_only,
                               must_exist=must_exist))

    @property
    def url(self) -> str:
        """The database URL, password included (mask it with `display_url` to print)."""
        return self.engine.url.render_as_string(hide_password=False)

    @property
    def display_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_run(self, *, run_id: str, name: str, planned: int, config: dict[str, Any],
                   overrides: Sequence[str], manifest: dict[str, Any],
                   artifacts: dict[str, str], parent_run_id: str | None = None,
                   sweep_id: str | None = None,
                   scrub: Callable[[str | None], str | None] = lambda s: s,
                   owner_token: str | None = None, index_at_end: bool = False) -> None:
        """Record a new run, owned by this process under `owner_token`; `scrub` removes
        secrets from everything stored. With `index_at_end`, the cache's index takes its
        results in when it is released (store/cacheindex.py), not one by one."""
        artifacts = {n: scrub(c) or "" for n, c in artifacts.items()}
        # Insertion order is kept: the plan's order of models and prompts follows it.
        config_json = scrub(json.dumps(config)) or ""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(insert(Run).values(
                id=run_id, name=name, status="running", created_at=now, finished_at=None,
                planned=planned, config_json=config_json,
                overrides_json=scrub(json.dumps(list(overrides))),
                config_sha256=sha256_hex(config_json), manifest_json=json.dumps(manifest),
                parent_run_id=parent_run_id, sweep_id=sweep_id, owner_host=this_host(),
                owner_pid=os.getpid(), owner_token=owner_token, heartbeat_at=now))
            if index_at_end:
                conn.execute(insert(CachePending).values(run_id=run_id))
            if artifacts:
                hashes = {name: sha256_hex(content) for name, content in artifacts.items()}
                known = set(conn.scalars(select(Artifact.sha256).where(
                    Artifact.sha256.in_(list(hashes.values())))))
                new = {h: artifacts[n] for n, h in hashes.items() if h not in known}
                if new:
                    conn.execute(insert(Artifact),
                                 [{"sha256": h, "content": c} for h, c in new.items()])
                conn.execute(insert(RunArtifact), [
                    {"run_id": run_id, "name": n, "sha256": h} for n, h in hashes.items()])

    def write(self, records: Sequence[Record]) -> None:
        """Store finished trials in one transaction: all of them, or none and raise what the
        database said. (`BatchWriter` retries a refused batch record by record.)"""
        if not records:
            return
        attempts = [a for r in records for a in r.attempts]
        trials = [r.trial for r in records if not r.trial_exists]
        # A resumed trial's row stays; its fingerprint is today's (an older promptlab's
        # could be another's: migration 0011), so its answer enters the cache under it.
        keys = [{"r": r.trial["run_id"], "i": r.trial["idx"], "k": r.trial["cache_key"]}
                for r in records if r.trial_exists]
        with self.engine.begin() as conn:
            executemany(conn, insert(StoredTrial), trials, "trials")
            if keys:
                conn.execute(_REKEY, keys)
            executemany(conn, insert(Attempt), attempts, "attempts")
            insert_results(conn, [r.result for r in records if r.copy_of is None])
            copy_results(conn, [{**r.result, "src_run": r.copy_of[0], "src_idx": r.copy_of[1]}
                                for r in records if r.copy_of is not None])

    def stored_as(self, records: Sequence[Record]) -> list[bool]:
        """Whether each record's result is stored as it is (its trial, finished at the same
        moment): a write that may or may not have been committed is told apart by it."""
        wanted = {(r.result["run_id"], r.result["idx"]) for r in records}
        found: dict[tuple[str, int], Any] = {}
        with self.engine.connect() as conn:
            for run_id in {run for run, _ in wanted}:
                idxs = sorted(i for run, i in wanted if run == run_id)
                for i in range(0, len(idxs), 500):
                    found.update(((run_id, idx), at) for idx, at in conn.execute(
                        select(Result.idx, Result.finished_at).where(
                            Result.run_id == run_id, Result.idx.in_(idxs[i:i + 500]))))
        return [found.get((r.result["run_id"], r.result["idx"])) == r.result.get("finished_at")
                for r in records]

    def progress_of(self, run_id: str) -> Prior:
        """What a resume starts from (`Prior`).

        Error and skipped results stay (a resume that fails loses nothing) and those trials
        run again: their new results replace them (`insert_results`); their attempts stay,
        and new attempts are numbered after them.
        """
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(Result.idx, Result.status, Result.cost_usd)
                                     .where(Result.run_id == run_id)))
            counts = dict(conn.execute(
                select(Attempt.idx, func.max(Attempt.number)).where(Attempt.run_id == run_id)
                .group_by(Attempt.idx)).all())
            existing = set(conn.scalars(select(StoredTrial.idx)
                                        .where(StoredTrial.run_id == run_id)))
        done = frozenset(r.idx for r in rows if r.status == "ok")
        cost = sum(r.cost_usd or 0.0 for r in rows if r.status == "ok")
        started = {idx: int(counts.get(idx, 0)) for idx in existing - done}
        return Prior(done, started, cost, len(counts))

    def replace_scores(self, run_id: str, scorers: list[str],
                       rows: Sequence[dict[str, Any]]) -> None:
        """Scores of these scorers for the run, replaced in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(delete(Score).where(Score.run_id == run_id, Score.scorer.in_(scorers)))
            for i in range(0, len(rows), 5000):
                conn.execute(insert(Score), list(rows[i:i + 5000]))
        self.refresh_cells(run_id, scores_only=True)

    def stored_keys(self, run_id: str) -> dict[int, str]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(StoredTrial.idx, StoredTrial.key)
                                     .where(StoredTrial.run_id == run_id)).all())

    def set_status(self, run_id: str, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(Run).where(Run.id == run_id).values(status=status,
                                                                     finished_at=None))

    def finish_run(self, run_id: str, status: str) -> None:
        """The final status of a run this process made and filled itself (a replay);
        its results go into the cache's index if they wait for its end."""
        with self.engine.begin() as conn:
            conn.execute(update(Run).where(Run.id == run_id).values(
                status=status, finished_at=utcnow()))
        with self.engine.begin() as conn:
            self.fill_cache(conn, run_id)
        self.refresh_cells(run_id)
