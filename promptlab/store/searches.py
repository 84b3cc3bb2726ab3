"""Searches (`promptlab search`): a mixin of `Store`, its two tables, and where the Optuna
study lives.

``searches`` records what reproduces a search: the resolved experiment config and
overrides, the space, objectives and directions, the sampler and its seed.
``search_trials`` links each Optuna trial number to its promptlab run, with its sampled
point (as Hydra overrides), state and objective values; a trial's row and run id are
written before its run starts, so a search killed mid-trial resumes that very run.

Optuna's own tables (``studies``, ``trials``, ``alembic_version``, ...) collide with ours
(``trials``, ``alembic_version``) and Optuna has no table prefix, so the study cannot share
our tables' namespace: on PostgreSQL it lives in the same database, in the schema
``optuna`` (created here; Optuna's engine gets ``search_path=optuna``); beside a SQLite
file ``results.db`` it lives in ``results.db.optuna``. It is the sampler's working state:
the search itself (every point, value and run) is in ``search_trials``, and a lost study
is rebuilt from there on resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DatabaseError

from promptlab.errors import UserError
from promptlab.store.queries import resolve_ref
from promptlab.store.tables import Base, Col, Result

__all__ = ["OPTUNA_SCHEMA", "OptunaStorage", "SearchInfo", "SearchQueries", "SearchTrialInfo",
           "ServedCall", "StoredSearch", "StoredSearchTrial"]

OPTUNA_SCHEMA = "optuna"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class StoredSearch(Base):  # a table, as in store/tables.py
    __tablename__ = "searches"

    id: Col = Column(String(32), primary_key=True)
    name: Col = Column(String(200), nullable=False)
    status: Col = Column(String(20), nullable=False)
    created_at: Col = Column(DateTime, index=True, nullable=False)
    finished_at: Col = Column(DateTime)
    config_json: Col = Column(Text, nullable=False)
    overrides_json: Col = Column(Text, nullable=False)
    spec_json: Col = Column(Text, nullable=False)
    sampler: Col = Column(String(20), nullable=False)
    seed: Col = Column(Integer, nullable=False)
    study_name: Col = Column(String(64), nullable=False)
    storage: Col = Column(Text, nullable=False)  # where the study is (no password)


class StoredSearchTrial(Base):
    __tablename__ = "search_trials"

    search_id: Col = Column(String(32), ForeignKey("searches.id"), primary_key=True)
    number: Col = Column(Integer, primary_key=True)
    # No foreign key: the row is written before its run's row, so a kill in between still
    # leaves the run id that resume will use.
    run_id: Col = Column(String(32), index=True, nullable=False)
    params_json: Col = Column(Text, nullable=False)
    overrides_json: Col = Column(Text, nullable=False)
    state: Col = Column(String(20), nullable=False)
    values_json: Col = Column(Text)
    error: Col = Column(Text)
    created_at: Col = Column(DateTime, nullable=False)
    finished_at: Col = Column(DateTime)


@dataclass(frozen=True)
class SearchInfo:
    id: str
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    config: dict[str, Any]
    overrides: list[str]
    spec: dict[str, Any]
    sampler: str
    seed: int
    study_name: str
    storage: str


@dataclass(frozen=True)
class SearchTrialInfo:
    number: int
    run_id: str
    params: dict[str, Any]
    overrides: list[str]
    state: str  # running, complete, failed
    values: list[float] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class OptunaStorage:
    """Where Optuna keeps a study: its URL (with any password: never print or store it),
    its engine options, and how to name it to a person."""

    url: str
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    display: str = ""


@dataclass(frozen=True)
class ServedCall:
    """One result's cost and latency as when its call was sent: a cache hit's are its
    source's (the hit itself cost nothing and took no network time)."""

    ok: bool
    cost_usd: float | None
    latency_ms: float | None


def _check_sqlite_file(path: str, db: str) -> None:
    """A study file that SQLite cannot read (e.g. overwritten) is one line: delete it."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.execute(text("select count(*) from sqlite_master"))
    except DatabaseError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else "unreadable"
        raise UserError(f"{path}: not an Optuna study database ({reason}); delete it: it "
                        f"holds only the samplers' state, and 'promptlab search --resume' "
                        f"rebuilds a search's study from {db}") from None
    finally:
        engine.dispose()


class SearchQueries:
    engine: Engine

    def served_calls(self, run_id: str) -> list[ServedCall]:
        """Every result of a run as `ServedCall`s: what a search's cost and latency
        objectives read, so a point answered from the cache costs what it cost."""
        cols = (Result.idx, Result.status, Result.cost_usd, Result.latency_ms,
                Result.cache_hit, Result.cache_source)
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(*cols).where(Result.run_id == run_id)))
            wanted: dict[str, list[int]] = {}
            for r in rows:
                if r.cache_hit and r.cache_source:
                    source_run, _, number = str(r.cache_source).rpartition(":")
                    wanted.setdefault(source_run, []).append(int(number))
            found: dict[str, tuple[float | None, float | None]] = {}
            for source_run, indexes in wanted.items():
                for i in range(0, len(indexes), 500):
                    for source_idx, cost, latency in conn.execute(
                            select(Result.idx, Result.cost_usd, Result.latency_ms).where(
                                Result.run_id == source_run,
                                Result.idx.in_(indexes[i:i + 500]))):
                        found[f"{source_run}:{source_idx}"] = (cost, latency)
        out = []
        for r in rows:
            cost, latency = ((found.get(str(r.cache_source), (None, None)))
                             if r.cache_hit else (r.cost_usd, r.latency_ms))
            out.append(ServedCall(r.status == "ok", cost, latency))
        return out

    def optuna_storage(self) -> OptunaStorage:
        """The study's place beside this database (see the module docstring)."""
        url = self.engine.url
        backend = url.get_backend_name()
        if backend == "sqlite":
            db = url.database
            if not db or db == ":memory:" or db.startswith("file:"):
                raise UserError("promptlab search needs a database file or PostgreSQL URL; "
                                "pass --db results.db")
            _check_sqlite_file(f"{db}.optuna", db)
            return OptunaStorage(f"sqlite:///{db}.optuna", {}, f"{db}.optuna")
        if backend == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
            shown = url.render_as_string(hide_password=True)
            return OptunaStorage(
                url.render_as_string(hide_password=False),
                {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}},
                f"{shown} (schema {OPTUNA_SCHEMA})")
        raise UserError(f"promptlab search keeps its Optuna study in SQLite or PostgreSQL, "
                        f"not {backend}; pass --db a file or a postgresql:// URL")

    def create_search(self, *, search_id: str, name: str, config: dict[str, Any],
                      overrides: Sequence[str], spec: dict[str, Any], sampler: str,
                      seed: int, storage: str,
                      scrub: Callable[[str | None], str | None] = lambda s: s) -> None:
        """Record a new search; `scrub` removes secrets from the config and overrides."""
        with self.engine.begin() as conn:
            conn.execute(insert(StoredSearch).values(
                id=search_id, name=name, status="running", created_at=_now(),
                config_json=scrub(json.dumps(config, sort_keys=True)) or "",
                overrides_json=scrub(json.dumps(list(overrides))) or "[]",
                spec_json=json.dumps(spec, sort_keys=True), sampler=sampler, seed=seed,
                study_name=search_id, storage=storage))

    def finish_search(self, search_id: str, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(StoredSearch).where(StoredSearch.id == search_id).values(
                status=status, finished_at=_now() if status == "completed" else None))

    def resolve_search_id(self, ref: str) -> str:
        """A full search id from an id, a unique prefix, or ``latest``."""
        fix = "start one with 'promptlab search', or pass --db"
        return resolve_ref(self.engine, StoredSearch.id, StoredSearch.created_at, ref,
                           "search", fix, f"search '{ref}' not found in this database; {fix}")

    def search(self, search_id: str) -> SearchInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(StoredSearch).where(StoredSearch.id == search_id)).first()
        if row is None:
            raise UserError(f"search '{search_id}' not found in this database")
        return SearchInfo(row.id, row.name, row.status, row.created_at, row.finished_at,
                          json.loads(row.config_json), json.loads(row.overrides_json),
                          json.loads(row.spec_json), row.sampler, row.seed, row.study_name,
                          row.storage)

    def start_search_trial(self, search_id: str, number: int, run_id: str,
                           params: dict[str, Any], overrides: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(StoredSearchTrial).values(
                search_id=search_id, number=number, run_id=run_id,
                params_json=json.dumps(params, sort_keys=True),
                overrides_json=json.dumps(list(overrides)), state="running",
                created_at=_now()))

    def finish_search_trial(self, search_id: str, number: int, state: str,
                            values: Sequence[float] | None, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(StoredSearchTrial).where(
                StoredSearchTrial.search_id == search_id,
                StoredSearchTrial.number == number).values(
                state=state, values_json=None if values is None else json.dumps(list(values)),
                error=error, finished_at=_now()))

    def search_trials(self, search_id: str) -> list[SearchTrialInfo]:
        stmt = (select(StoredSearchTrial).where(StoredSearchTrial.search_id == search_id)
                .order_by(StoredSearchTrial.number))
        with self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
        return [SearchTrialInfo(r.number, r.run_id, json.loads(r.params_json),
                                json.loads(r.overrides_json), r.state,
                                None if r.values_json is None else json.loads(r.values_json),
                                r.error, r.created_at, r.finished_at) for r in rows]
