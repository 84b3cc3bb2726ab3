"""The database schema, as SQLAlchemy 2 declarative models.

Trials are keyed by (run_id, idx), their position in the run's deterministic plan, so
attempts and results reference them without a round trip for generated ids and batches
go in with one executemany each. Naming: ``*_json`` JSON text, ``*_ms`` durations,
``*_at`` UTC timestamps, ``*_sha256`` hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["RESULT_DETAILS", "Base", "Run", "Artifact", "RunArtifact", "StoredTrial", "Attempt",
           "Result", "Score", "StoredBatch", "ReportCell", "ReportCellScore"]


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    planned: Mapped[int] = mapped_column(Integer)
    config_json: Mapped[str] = mapped_column(Text)
    overrides_json: Mapped[str] = mapped_column(Text)
    config_sha256: Mapped[str] = mapped_column(String(64), index=True)
    manifest_json: Mapped[str] = mapped_column(Text)
    parent_run_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("runs.id"))
    sweep_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # The process running it (see store/ownership.py): resume refuses while it lives.
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_token: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)


class Artifact(Base):
    """Content-addressed texts: templates and dataset files, stored once."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[str] = mapped_column(Text)


class RunArtifact(Base):
    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))


class StoredTrial(Base):
    __tablename__ = "trials"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(64))
    model_alias: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(500))
    prompt: Mapped[str] = mapped_column(String(200))
    params_json: Mapped[str] = mapped_column(Text)
    row_id: Mapped[str] = mapped_column(String(200))
    row_json: Mapped[str] = mapped_column(Text)
    repeat: Mapped[int] = mapped_column(Integer)
    messages_json: Mapped[str] = mapped_column(Text)
    endpoint: Mapped[str] = mapped_column(String(500))
    cache_key: Mapped[str] = mapped_column(String(64), index=True)

    __table_args__ = (Index("ix_trials_run_key", "run_id", "key", unique=True),)


class Attempt(Base):
    """Every HTTP try, with the redacted request and the raw response body."""

    __tablename__ = "attempts"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    url: Mapped[str] = mapped_column(Text)
    request_headers_json: Mapped[str] = mapped_column(Text)
    request_body: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    retry_after_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "idx"], ["trials.run_id", "trials.idx"]),
    )


class Result(Base):
    """One per finished trial: its output or its error."""

    __tablename__ = "results"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(20))
    output: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(50))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    response_model: Mapped[str | None] = mapped_column(String(500))
    fingerprint: Mapped[str | None] = mapped_column(String(200))
    error_kind: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    cacheable: Mapped[bool] = mapped_column(Boolean, default=False)
    cache_source: Mapped[str | None] = mapped_column(String(100))
    finished_at: Mapped[datetime] = mapped_column(DateTime)
    # 0005: tool calls (name + arguments, in order), the parsed JSON of a structured
    # output, reasoning summaries / thinking apart from the output, token detail.
    tool_calls_json: Mapped[str | None] = mapped_column(Text)
    parsed_json: Mapped[str | None] = mapped_column(Text)
    reasoning: Mapped[str | None] = mapped_column(Text)
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_input_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_write_tokens: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "idx"], ["trials.run_id", "trials.idx"]),
        Index("ix_results_run_status", "run_id", "status"),
    )


# The 0005 result columns, as the runner's records and the readers name them.
RESULT_DETAILS = ("tool_calls_json", "parsed_json", "reasoning", "reasoning_tokens",
                  "cached_input_tokens", "cache_write_tokens")


class Score(Base):
    __tablename__ = "scores"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    scorer: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    detail_json: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(["run_id", "idx"], ["trials.run_id", "trials.idx"]),
    )


class StoredBatch(Base):
    """A batch sent to a provider's batch API (see promptlab/batch): its ids, status and
    counts, written before polling starts, so a resumed run polls the same batches.

    ``idx_json`` holds the trials in it as [first, last] ranges; ``round`` is the attempt
    (1 for the first batch of a trial, 2 for its retry, ...)."""

    __tablename__ = "batches"

    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_alias: Mapped[str] = mapped_column(String(200))
    api: Mapped[str] = mapped_column(String(20))
    round: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    batch_id: Mapped[str | None] = mapped_column(String(200))
    input_file_id: Mapped[str | None] = mapped_column(String(200))
    output_file_id: Mapped[str | None] = mapped_column(String(200))
    error_file_id: Mapped[str | None] = mapped_column(String(200))
    results_url: Mapped[str | None] = mapped_column(Text)
    request_count: Mapped[int] = mapped_column(Integer)
    completed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    idx_json: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    ingested_at: Mapped[datetime | None] = mapped_column(DateTime)


# The viewer's matrix pages a run's trials by dataset row (store/browse.py): without this
# index a page of a million-trial run sorts the whole run.
Index("ix_trials_run_row", StoredTrial.run_id, StoredTrial.row_id, StoredTrial.idx)


class ReportCell(Base):
    """0008: a run's results summed per (model, prompt, params) cell, for reports; a cache
    that triggers drop on any write to the run's results (store/cells.py fills it)."""

    __tablename__ = "report_cells"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    cell: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_alias: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(String(200))
    params_json: Mapped[str] = mapped_column(Text)
    calls: Mapped[int] = mapped_column(Integer)
    ok: Mapped[int] = mapped_column(Integer)
    cached: Mapped[int] = mapped_column(Integer)
    tool_call_ok: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[float] = mapped_column(Float)
    # float64 arrays, sorted: the ok, non-cached latencies and TTFTs (exact percentiles)
    latencies: Mapped[bytes] = mapped_column(LargeBinary)
    ttfts: Mapped[bytes] = mapped_column(LargeBinary)


class ReportCellScore(Base):
    """0008: a run's scores per cell and scorer: pass counts, and the mean-type values
    with their trial indexes (int64 / float64 arrays, in index order); dropped by triggers
    on any write to the run's scores. Keyed apart from `ReportCell`: either may be refilled
    without the other."""

    __tablename__ = "report_cell_scores"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scorer: Mapped[str] = mapped_column(String(200), primary_key=True)
    cell: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_alias: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(String(200))
    params_json: Mapped[str] = mapped_column(Text)
    n: Mapped[int] = mapped_column(Integer)
    passed: Mapped[int] = mapped_column(Integer)
    idxs: Mapped[bytes] = mapped_column(LargeBinary)
    vals: Mapped[bytes] = mapped_column(LargeBinary)
