"""The one place that writes SQL: runs, artifacts, and batches of finished trials.

A batch is one transaction with one executemany per table, so a run interrupted at any
point leaves every committed trial whole (its trial row, attempts and result together).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from promptlab.canonical import sha256_hex
from promptlab.store.models import Artifact, Attempt, Result, Run, RunArtifact, TrialRow

__all__ = ["Record", "Store", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Record:
    """A finished trial as rows: the trial, every attempt, and the result."""

    trial: dict[str, Any]
    result: dict[str, Any]
    attempts: list[dict[str, Any]] = field(default_factory=list)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_run(self, *, run_id: str, name: str, planned: int, config: dict[str, Any],
                   overrides: Sequence[str], manifest: dict[str, Any],
                   artifacts: dict[str, str], parent_run_id: str | None = None,
                   sweep_id: str | None = None) -> None:
        config_json = json.dumps(config, sort_keys=True)
        with self.engine.begin() as conn:
            conn.execute(insert(Run).values(
                id=run_id, name=name, status="running", created_at=utcnow(), finished_at=None,
                planned=planned, config_json=config_json,
                overrides_json=json.dumps(list(overrides)),
                config_sha256=sha256_hex(config_json), manifest_json=json.dumps(manifest),
                parent_run_id=parent_run_id, sweep_id=sweep_id))
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
        if not records:
            return
        attempts = [a for r in records for a in r.attempts]
        with self.engine.begin() as conn:
            conn.execute(insert(TrialRow), [r.trial for r in records])
            if attempts:
                conn.execute(insert(Attempt), attempts)
            conn.execute(insert(Result), [r.result for r in records])

    def finish_run(self, run_id: str, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(Run).where(Run.id == run_id).values(
                status=status, finished_at=utcnow()))
