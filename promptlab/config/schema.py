"""The structured-config schema: what an experiment config may say.

OmegaConf validates a composed config against these dataclasses, so an unknown key,
a wrong type or a missing required value is caught before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MISSING = "???"  # omegaconf.MISSING: a value the composed config must set

__all__ = [
    "ExperimentConfig",
    "ModelConfig",
    "PromptConfig",
    "MessageConfig",
    "DatasetConfig",
    "GridConfig",
    "RunConfig",
    "ServerConfig",
    "PriceConfig",
    "SearchConfig",
]


@dataclass
class ServerConfig:
    """A local server promptlab starts for the run and stops afterwards.

    kind: ``mock`` (the built-in mock LLM server), ``llamacpp`` (llama.cpp's server from
    the ``local`` extra, on ``model_path`` or the packaged Gemma 3 270M) or ``command`` (any
    command line; ``{port}`` becomes a free port on 127.0.0.1, ``{python}`` this Python).
    ``fallback: mock`` runs the mock instead, with a hint, when llama.cpp is not installed.
    """

    kind: str = "mock"
    command: list[str] = field(default_factory=list)
    ready_path: str = "/v1/models"
    ready_timeout_s: float = 60.0
    latency_ms: float = 0.0
    model_path: str | None = None
    n_ctx: int = 2048
    n_parallel: int = 2
    fallback: str | None = None


@dataclass
class PriceConfig:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    # The share of the price a provider's batch API charges (run.batch=true).
    batch_discount: float = 0.5
    # Input read from (cached) or written to (cache_write) the provider's prompt cache;
    # unset, they cost input_per_mtok.
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None


@dataclass
class HttpConfig:
    """The generic HTTP provider: any JSON REST API, no code.

    ``body`` is a Jinja2 template rendering the JSON request from ``messages``, ``params``,
    ``model`` and ``prompt`` (all messages' text joined); paths are dotted, with list
    indexes as numbers (``candidates.0.content.parts.0.text``). ``retry_on`` maps status
    codes to rate_limit, transient, auth or fatal.
    """

    method: str = "POST"
    path: str = ""
    body: str = MISSING
    output_path: str = MISSING
    input_tokens_path: str | None = None
    output_tokens_path: str | None = None
    model_path: str | None = None
    finish_reason_path: str | None = None
    api_key_header: str | None = None
    api_key_param: str | None = None
    retry_on: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelConfig:
    provider: str = "openai"
    model: str = MISSING
    base_url: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    secret_headers: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    secret_params: list[str] = field(default_factory=list)
    max_concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    timeout_s: float | None = None
    server: ServerConfig | None = None
    price: PriceConfig = field(default_factory=PriceConfig)
    endpoint: str = "chat"
    stream: bool = False
    http: HttpConfig | None = None
    # Send a trial's repeats as one call with n samples (OpenAI-compatible APIs that honour
    # n; where a server returns fewer choices, the rest are sent one by one).
    repeats_as_n: bool = False
    # With run.batch=true, false sends this model's trials call by call.
    batch: bool = True
    # Provider-neutral tools ({name, description, parameters}), tool_choice (auto, none,
    # required or a tool name) and response_format (Chat Completions' form); see
    # providers/tools.py. A prompt's own replace these.
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | None = None
    response_format: dict[str, Any] | None = None


@dataclass
class ScorerConfig:
    """One scorer. type: exact, contains, regex, json, json_schema, python or judge.

    exact/contains compare with the dataset ``field`` (default ``expected``; a list means any
    of them); regex searches ``pattern``; json_schema validates against ``schema``; python
    calls ``function`` (``module:function``, given output, row, params); judge asks ``model``
    (an alias in experiments/models/) with ``template`` (in templates/) and reads PASS/FAIL
    or ``score: N`` from the reply (``threshold`` turns a score into a verdict).
    """

    type: str = MISSING
    field: str | None = None
    name: str | None = None  # tool_call: the expected tool's name (else the row's field)
    arguments: dict[str, Any] | None = None  # tool_call: expected arguments (a subset)
    pattern: str | None = None
    case_sensitive: bool = False
    strip: bool = True
    schema: Any = None
    function: str | None = None
    model: str | None = None
    template: str | None = None
    threshold: float | None = None


@dataclass
class MessageConfig:
    """One message: ``content`` (text, or a list of parts ``{text: ...}`` / ``{image:
    ...}``, each a template) or ``template`` (a file under templates/); ``cache_control``
    (``{type: ephemeral}``, optionally ``ttl: 1h``) marks the prompt up to this message for
    Anthropic's prompt cache (OpenAI caches by itself and is sent no marker)."""

    role: str = "user"
    content: Any = None
    template: str | None = None
    cache_control: Any = None


@dataclass
class PromptConfig:
    messages: list[MessageConfig] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    scorers: dict[str, ScorerConfig] = field(default_factory=dict)
    search: SearchConfig | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | None = None
    response_format: dict[str, Any] | None = None


@dataclass
class DatasetConfig:
    name: str = "inline"
    path: str | None = None
    rows: list[dict[str, Any]] | None = None
    id_field: str | None = None
    limit: int | None = None


@dataclass
class GridConfig:
    params: dict[str, list[Any]] = field(default_factory=dict)
    repeats: int = 1


@dataclass
class RunConfig:
    concurrency: int = 32  # requests being sent at once, across endpoints
    timeout_s: float = 60.0
    progress: bool = True
    batch_size: int = 200
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    cache: str = "readwrite"
    max_calls: int | None = None
    max_cost_usd: float | None = None
    # Send trials through the providers' batch APIs (OpenAI Batch, Anthropic Message Batches).
    batch: bool = False
    shards: int = 1  # run.shards=N: N workers through the Hydra launcher (config/launch.py)
    # run.shard_db="results-{shard}.db": each shard writes its own SQLite file (merge them)
    shard_db: str | None = None


@dataclass
class SearchConfig:
    """``search:``, read by `promptlab search` (see promptlab/config/search.py); params in
    Hydra's sweep syntax, objective a scorer, cost_usd or latency_p50_ms (or two)."""

    params: dict[str, str] = field(default_factory=dict)
    objective: Any = None  # a name or a list of two names
    direction: Any = "maximize"  # a direction or a list, one per objective
    trials: int = 20
    parallel: int = 1
    seed: int | None = None
    sampler: str = "tpe"


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    db: str | None = None
    models: dict[str, ModelConfig] = field(default_factory=dict)
    prompts: dict[str, PromptConfig] = field(default_factory=dict)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    run: RunConfig = field(default_factory=RunConfig)
    scorers: dict[str, ScorerConfig] = field(default_factory=dict)
    search: SearchConfig | None = None
