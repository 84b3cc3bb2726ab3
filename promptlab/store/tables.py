"""The database schema, as SQLAlchemy Core tables on one `MetaData` (``Base.metadata``).

Each table is a small class (see `Base`): its columns are class attributes, so queries read
``select(Run.id).where(Run.status == "running")``, and the `Table` is ``Run.__table__``;
``insert(Run)``, ``select(Run)`` and joins take the class itself. Plain Core on purpose:
nothing here needs the ORM, and importing ``sqlalchemy.orm`` and mapping the classes cost
every command that opens the store about 70 ms; tests/test_startup_imports.py keeps it out.

Trials are keyed by (run_id, idx), their position in the run's deterministic plan, so
attempts and results reference them without a round trip for generated ids and batches
go in with one executemany each. Naming: ``*_json`` JSON text, ``*_ms`` durations,
``*_at`` UTC timestamps, ``*_sha256`` hashes.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeAlias

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnClause,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["RESULT_DETAILS", "Base", "Col", "Run", "Artifact", "RunArtifact", "StoredTrial",
           "Attempt", "Result", "Score", "StoredBatch", "ReportCell", "ReportCellScore",
           "CacheEntry", "CachePending"]

# How mypy sees a column read off its table's class (see `Base`). Its value type is left
# Any, as the ORM's attributes' ``.type`` was: store/replace.py mixes those in one dict.
Col: TypeAlias = ColumnClause[Any]


class Base:
    """A table as a class: a subclass names its table (``__tablename__``), declares its
    columns as class attributes (an attribute's name is its column's name) and any indexes
    and constraints in ``__table_args__``; defining it adds the `Table` to ``Base.metadata``
    as ``__table__``. Columns are nullable unless marked, as in Core.

    Each column is annotated `Col`: from SQLAlchemy 2.1 a `Column` read off a class is
    typed ``Never`` (its ``Named.__get__``, meant for ``TypedColumns``), so mypy would
    reject every ``Run.id`` without it."""

    metadata: ClassVar[MetaData] = MetaData()
    __tablename__: ClassVar[str]
    __table__: ClassVar[Table]
    __table_args__: ClassVar[tuple[Any, ...]] = ()
    __table_kwargs__: ClassVar[dict[str, Any]] = {}  # dialect options, as Table takes them

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        columns = []
        for key, value in vars(cls).items():  # in the order written
            if isinstance(value, Column):
                value.name = value.key = key
                columns.append(value)
        cls.__table__ = Table(cls.__tablename__, cls.metadata, *columns, *cls.__table_args__,
                              **cls.__table_kwargs__)

    @classmethod
    def __clause_element__(cls) -> Table:
        """What SQLAlchemy takes the class for: ``insert(Result)``, ``select(Run)``,
        ``.join(Result, ...)``."""
        return cls.__table__


class Run(Base):
    __tablename__ = "runs"

    id: Col = Column(String(32), primary_key=True)
    name: Col = Column(String(200), index=True, nullable=False)
    status: Col = Column(String(20), index=True, nullable=False)
    created_at: Col = Column(DateTime, index=True, nullable=False)
    finished_at: Col = Column(DateTime)
    planned: Col = Column(Integer, nullable=False)
    config_json: Col = Column(Text, nullable=False)
    overrides_json: Col = Column(Text, nullable=False)
    config_sha256: Col = Column(String(64), index=True, nullable=False)
    manifest_json: Col = Column(Text, nullable=False)
    parent_run_id: Col = Column(String(32), ForeignKey("runs.id"))
    sweep_id: Col = Column(String(32), index=True)
    # The process running it (see store/ownership.py): resume refuses while it lives.
    owner_host: Col = Column(String(255))
    owner_pid: Col = Column(Integer)
    owner_token: Col = Column(String(32))
    heartbeat_at: Col = Column(DateTime)


class Artifact(Base):
    """Content-addressed texts: templates and dataset files, stored once."""

    __tablename__ = "artifacts"

    sha256: Col = Column(String(64), primary_key=True)
    content: Col = Column(Text, nullable=False)


class RunArtifact(Base):
    __tablename__ = "run_artifacts"

    run_id: Col = Column(String(32), ForeignKey("runs.id"), primary_key=True)
    name: Col = Column(String(500), primary_key=True)
    sha256: Col = Column(String(64), ForeignKey("artifacts.sha256"), nullable=False)


class StoredTrial(Base):
    __tablename__ = "trials"

    run_id: Col = Column(String(32), ForeignKey("runs.id"), primary_key=True)
    idx: Col = Column(Integer, primary_key=True, autoincrement=False)
    key: Col = Column(String(64), nullable=False)
    model_alias: Col = Column(String(200), nullable=False)
    provider: Col = Column(String(50), nullable=False)
    model: Col = Column(String(500), nullable=False)
    prompt: Col = Column(String(200), nullable=False)
    params_json: Col = Column(Text, nullable=False)
    row_id: Col = Column(String(200), nullable=False)
    row_json: Col = Column(Text, nullable=False)
    repeat: Col = Column(Integer, nullable=False)
    messages_json: Col = Column(Text, nullable=False)
    endpoint: Col = Column(String(500), nullable=False)
    cache_key: Col = Column(String(64), nullable=False)  # indexed in cache_entries (0009)
    # No index on (run_id, key) since 0010: a random page written per trial, for no lookup.


class Attempt(Base):
    """Every HTTP try, with the redacted request and the raw response body."""

    __tablename__ = "attempts"

    run_id: Col = Column(String(32), primary_key=True)
    idx: Col = Column(Integer, primary_key=True, autoincrement=False)
    number: Col = Column(Integer, primary_key=True, autoincrement=False)
    started_at: Col = Column(DateTime, nullable=False)
    duration_ms: Col = Column(Float, nullable=False)
    url: Col = Column(Text, nullable=False)
    request_headers_json: Col = Column(Text, nullable=False)
    request_body: Col = Column(Text, nullable=False)
    status_code: Col = Column(Integer)
    response_body: Col = Column(Text)
    error_kind: Col = Column(String(20))
    error: Col = Column(Text)
    retry_after_ms: Col = Column(Float)

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "idx"], ["trials.run_id", "trials.idx"]),
    )


class Result(Base):
    """One per finished trial: its output or its error."""

    __tablename__ = "results"

    run_id: Col = Column(String(32), primary_key=True)
    idx: Col = Column(Integer, primary_key=True, autoincrement=False)
    status: Col = Column(String(20), nullable=False)
    output: Col = Column(Text)
    finish_reason: Col = Column(String(50))
    input_tokens: Col = Column(Integer)
    output_tokens: Col = Column(Integer)
    latency_ms: Col = Column(Float)
    ttft_ms: Col = Column(Float)
    tokens_per_s: Col = Column(Float)
    cost_usd: Col = Column(Float)
    attempts: Col = Column(Integer, nullable=False)
    response_model: Col = Column(String(500))
    fingerprint: Col = Column(String(200))
    error_kind: Col = Column(String(20))
    error: Col = Column(Text)
    cache_hit: Col = Column(Boolean, default=False, nullable=False)
    cacheable: Col = Column(Boolean, default=False, nullable=False)
    cache_source: Col = Column(String(100))
    finished_at: Col = Column(DateTime, nullable=False)
    # 0005: tool calls (name + arguments, in order), the parsed JSON of a structured
    # output, reasoning summaries / thinking apart from the output, token detail.
    tool_calls_json: Col = Column(Text)
    parsed_json: Col = Column(Text)
    reasoning: Col = Column(Text)
    reasoning_tokens: Col = Column(Integer)
    cached_input_tokens: Col = Column(Integer)
    cache_write_tokens: Col = Column(Integer)

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "idx"], ["trials.run_id", "trials.idx"]),
        Index("ix_results_run_status", "run_id", "status"),
    )


# The 0005 result columns, as the runner's records and the readers name them.
RESULT_DETAILS = ("tool_calls_json", "parsed_json", "reasoning", "reasoning_tokens",
                  "cached_input_tokens", "cache_write_tokens")


class Score(Base):
    __tablename__ = "scores"

    run_id: Col = Column(String(32), primary_key=True)
    idx: Col = Column(Integer, primary_key=True, autoincrement=False)
    scorer: Col = Column(String(200), primary_key=True)
    value: Col = Column(Float)
    passed: Col = Column(Boolean)
    detail_json: Col = Column(Text)

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "idx"], ["trials.run_id", "trials.idx"]),
    )


class StoredBatch(Base):
    """A batch sent to a provider's batch API (see promptlab/batch): its ids, status and
    counts, written before polling starts, so a resumed run polls the same batches.

    ``idx_json`` holds the trials in it as [first, last] ranges; ``round`` is the attempt
    (1 for the first batch of a trial, 2 for its retry, ...)."""

    __tablename__ = "batches"

    run_id: Col = Column(String(32), ForeignKey("runs.id"), primary_key=True)
    number: Col = Column(Integer, primary_key=True, autoincrement=False)
    model_alias: Col = Column(String(200), nullable=False)
    api: Col = Column(String(20), nullable=False)
    round: Col = Column(Integer, nullable=False)
    status: Col = Column(String(20), nullable=False)
    batch_id: Col = Column(String(200))
    input_file_id: Col = Column(String(200))
    output_file_id: Col = Column(String(200))
    error_file_id: Col = Column(String(200))
    results_url: Col = Column(Text)
    request_count: Col = Column(Integer, nullable=False)
    completed_count: Col = Column(Integer, default=0, nullable=False)
    failed_count: Col = Column(Integer, default=0, nullable=False)
    idx_json: Col = Column(Text, nullable=False)
    error: Col = Column(Text)
    created_at: Col = Column(DateTime, nullable=False)
    updated_at: Col = Column(DateTime, nullable=False)
    ingested_at: Col = Column(DateTime)


# The viewer's matrix pages a run's trials by dataset row (store/browse.py): without this
# index a page of a million-trial run sorts the whole run.
Index("ix_trials_run_row", StoredTrial.run_id, StoredTrial.row_id, StoredTrial.idx)


class ReportCell(Base):
    """0008: a run's results summed per (model, prompt, params) cell, for reports; a cache
    that triggers drop on any write to the run's results (store/cells.py fills it)."""

    __tablename__ = "report_cells"

    run_id: Col = Column(String(32), primary_key=True)
    cell: Col = Column(Integer, primary_key=True, autoincrement=False)
    model_alias: Col = Column(String(200), nullable=False)
    prompt: Col = Column(String(200), nullable=False)
    params_json: Col = Column(Text, nullable=False)
    calls: Col = Column(Integer, nullable=False)
    ok: Col = Column(Integer, nullable=False)
    cached: Col = Column(Integer, nullable=False)
    tool_call_ok: Col = Column(Integer, nullable=False)
    input_tokens: Col = Column(BigInteger, nullable=False)
    output_tokens: Col = Column(BigInteger, nullable=False)
    reasoning_tokens: Col = Column(BigInteger, nullable=False)
    cached_input_tokens: Col = Column(BigInteger, nullable=False)
    cache_write_tokens: Col = Column(BigInteger, nullable=False)
    cost_usd: Col = Column(Float, nullable=False)
    # float64 arrays, sorted: the ok, non-cached latencies and TTFTs (exact percentiles)
    latencies: Col = Column(LargeBinary, nullable=False)
    ttfts: Col = Column(LargeBinary, nullable=False)


class ReportCellScore(Base):
    """0008: a run's scores per cell and scorer: pass counts, and the mean-type values
    with their trial indexes (int64 / float64 arrays, in index order); dropped by triggers
    on any write to the run's scores. Keyed apart from `ReportCell`: either may be refilled
    without the other."""

    __tablename__ = "report_cell_scores"

    run_id: Col = Column(String(32), primary_key=True)
    scorer: Col = Column(String(200), primary_key=True)
    cell: Col = Column(Integer, primary_key=True, autoincrement=False)
    model_alias: Col = Column(String(200), nullable=False)
    prompt: Col = Column(String(200), nullable=False)
    params_json: Col = Column(Text, nullable=False)
    n: Col = Column(Integer, nullable=False)
    passed: Col = Column(Integer, nullable=False)
    idxs: Col = Column(LargeBinary, nullable=False)
    vals: Col = Column(LargeBinary, nullable=False)


class CacheEntry(Base):
    """0009: the cache's index: every fresh ok result (a source; a cache hit's copy never
    is) under its request fingerprint. Derived, never the record: triggers on results keep
    it in the writing transaction (migrations/versions/0009_cache_entries.py), so a lookup
    reads the sources of a fingerprint, however many cached re-runs repeated it."""

    __tablename__ = "cache_entries"

    cache_key: Col = Column(String(64), primary_key=True)
    run_id: Col = Column(String(32), primary_key=True)
    idx: Col = Column(Integer, primary_key=True, autoincrement=False)
    finished_at: Col = Column(DateTime, nullable=False)

    __table_kwargs__ = {"sqlite_with_rowid": False}  # the rows are their key: one B-tree


class CachePending(Base):
    """0010: a run whose fresh results the cache's index takes in when the run ends, sorted
    (store/cacheindex.py), instead of one trigger call per result: the triggers pass over
    its results while its row is here."""

    __tablename__ = "cache_pending"

    run_id: Col = Column(String(32), ForeignKey("runs.id"), primary_key=True)
