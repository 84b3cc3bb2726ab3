"""Frozen domain types: what an experiment is, with no OmegaConf past this point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ServerSpec",
    "ModelSpec",
    "MessageSpec",
    "PromptSpec",
    "Row",
    "Trial",
    "RunSettings",
    "GridSpec",
    "DatasetSpec",
    "ExperimentSpec",
]


@dataclass(frozen=True)
class ServerSpec:
    kind: str
    command: tuple[str, ...] = ()
    ready_path: str = "/v1/models"
    ready_timeout_s: float = 60.0
    latency_ms: float = 0.0
    model_path: str | None = None
    n_ctx: int = 2048
    n_parallel: int = 2
    fallback: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    provider: str
    model: str
    base_url: str | None
    api_key_env: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    secret_headers: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    secret_params: tuple[str, ...] = ()
    max_concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    timeout_s: float | None = None
    server: ServerSpec | None = None
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    endpoint: str = "chat"  # openai: chat (/chat/completions) or completions (/completions)
    stream: bool = False
    http: dict[str, Any] | None = field(default=None, hash=False)
    repeats_as_n: bool = False
    batch: bool = True  # with run.batch: through the provider's batch API
    batch_discount: float = 0.5  # the batch price as a share of the price
    cached_input_per_mtok: float | None = None  # None: cached input costs input_per_mtok
    cache_write_per_mtok: float | None = None   # None: cache writes cost input_per_mtok
    # Provider-neutral request options (see providers/tools.py); a prompt's own win.
    tools: tuple[dict[str, Any], ...] = field(default=(), hash=False)
    tool_choice: Any = field(default=None, hash=False)
    response_format: Any = field(default=None, hash=False)

    def endpoint_identity(self) -> str:
        """Where requests go, stable across runs: a managed server's port changes each run."""
        if self.server is not None:
            detail = " ".join(self.server.command) or (self.server.model_path or "")
            return f"managed:{self.server.kind}:{detail}"
        return self.base_url or self.provider

    def identity(self) -> dict[str, Any]:
        """What about the model defines a trial (not limits, timeouts or secrets)."""
        out = {"alias": self.alias, "provider": self.provider, "model": self.model}
        if self.endpoint != "chat":
            out["endpoint"] = self.endpoint
        out.update(_options(self.tools, self.tool_choice, self.response_format))
        return out


def _options(tools: tuple[dict[str, Any], ...], tool_choice: Any,
             response_format: Any) -> dict[str, Any]:
    """The request options that are set, for an identity (absent ones leave keys as they were)."""
    out: dict[str, Any] = {}
    if tools:
        out["tools"] = list(tools)
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    if response_format is not None:
        out["response_format"] = response_format
    return out


@dataclass(frozen=True)
class MessageSpec:
    role: str
    source: str
    template: str | None = None  # file name under templates/, or None for inline content
    # Content parts instead of one text: (kind, source) pairs, kind "text" or "image", each
    # source a template rendered per row (see templates.py).
    parts: tuple[tuple[str, str], ...] | None = None
    # Anthropic's prompt-cache marker for this message, as JSON text (templates.py)
    cache_control: str | None = None


@dataclass(frozen=True)
class PromptSpec:
    name: str
    messages: tuple[MessageSpec, ...]
    vars: dict[str, Any] = field(default_factory=dict, hash=False)
    tools: tuple[dict[str, Any], ...] = field(default=(), hash=False)
    tool_choice: Any = field(default=None, hash=False)
    response_format: Any = field(default=None, hash=False)

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "messages": [[m.role, m.source] for m in self.messages],
            "vars": self.vars,
            **_options(self.tools, self.tool_choice, self.response_format),
        }


@dataclass(frozen=True)
class Row:
    id: str
    index: int
    data: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Trial:
    index: int
    key: str
    model: ModelSpec
    prompt: PromptSpec
    params: dict[str, Any] = field(hash=False)
    row: Row
    repeat: int


@dataclass(frozen=True)
class RunSettings:
    concurrency: int = 32
    timeout_s: float = 60.0
    progress: bool = True
    batch_size: int = 200
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    cache: str = "readwrite"
    max_calls: int | None = None
    max_cost_usd: float | None = None
    batch: bool = False
    shards: int = 1  # run.shards=N: N workers through the Hydra launcher (config/launch.py)
    # run.shard_db="results-{shard}.db": each shard writes its own SQLite file (merge them)
    shard_db: str | None = None


@dataclass(frozen=True)
class GridSpec:
    params: dict[str, tuple[Any, ...]]
    repeats: int = 1


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: str | None
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    models: tuple[ModelSpec, ...]
    prompts: tuple[PromptSpec, ...]
    dataset: DatasetSpec
    grid: GridSpec
    run: RunSettings
