"""Turn a validated config into an `ExperimentSpec` and check everything before any call.

`prepare` is the "fail before spending money" gate: it builds the spec, renders every
prompt for every dataset row, and checks API keys and providers, so any user error is
raised before the first request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptlab.canonical import canonical_json
from promptlab.config.judge import judge_model_config
from promptlab.config.loading import LoadedConfig, source_file
from promptlab.config.locate import Locator
from promptlab.dataset import load_dataset
from promptlab.errors import UserError
from promptlab.providers import ProviderRequest, get_provider
from promptlab.providers.tools import spec_options
from promptlab.scoring import ScorerSet, build_scorers
from promptlab.scoring.judge import JudgeSpec
from promptlab.spec import (
    ExperimentSpec,
    GridSpec,
    MessageSpec,
    ModelSpec,
    PromptSpec,
    RunSettings,
    ServerSpec,
)
from promptlab.templates import Renderer, cache_control, message_spec

__all__ = ["Prepared", "build_spec", "model_spec", "prepare", "resolve_judges"]


@dataclass
class Prepared:
    """A spec ready to run, with what provenance needs (artifact contents by name)."""

    spec: ExperimentSpec
    renderer: Renderer
    loaded: LoadedConfig
    artifacts: dict[str, str] = field(default_factory=dict)
    scorers: ScorerSet = field(default_factory=lambda: ScorerSet({}))


def _where(loaded: LoadedConfig, key: str) -> str:
    return source_file(key, loaded.choices, loaded.config_dir)


def model_spec(alias: str, cfg: dict[str, Any], loaded: LoadedConfig) -> ModelSpec:
    """A validated model config as a `ModelSpec`; raises UserError naming its file."""
    where = _where(loaded, f"models.{alias}")
    try:
        get_provider(cfg["provider"])
    except KeyError as exc:
        raise UserError(f"{where}: models.{alias}.provider: {exc.args[0]}") from None
    server = cfg.get("server")
    server_spec = None
    if server is not None and cfg.get("base_url") and "{port}" not in cfg["base_url"]:
        raise UserError(f"{where}: models.{alias}.base_url is not used while "
                        f"models.{alias}.server starts a server for the run; set "
                        f"models.{alias}.server=null to call {cfg['base_url']}, or put "
                        "{port} in base_url for the started server's port")
    if server is not None:
        if server["kind"] not in ("mock", "command", "llamacpp"):
            raise UserError(f"{where}: models.{alias}.server.kind: unknown kind "
                            f"'{server['kind']}'; use mock, llamacpp or command")
        if server["kind"] == "command" and not server["command"]:
            raise UserError(f"{where}: models.{alias}.server.command is empty; give the command "
                            "line that starts the server, with {{port}} where the port goes")
        server_spec = ServerSpec(kind=server["kind"], command=tuple(server["command"]),
                                 ready_path=server["ready_path"],
                                 ready_timeout_s=server["ready_timeout_s"],
                                 latency_ms=server["latency_ms"],
                                 model_path=server["model_path"], n_ctx=server["n_ctx"],
                                 n_parallel=server["n_parallel"], fallback=server["fallback"])
    elif not cfg.get("base_url") and cfg["provider"] not in ("openai", "anthropic"):
        raise UserError(f"{where}: models.{alias}.base_url is required; set the API's URL")
    if cfg["endpoint"] not in ("chat", "completions", "responses"):
        raise UserError(f"{where}: models.{alias}.endpoint: '{cfg['endpoint']}' is not an "
                        "endpoint; use chat, completions or responses")
    if cfg["provider"] == "http" and cfg.get("http") is None:
        raise UserError(f"{where}: models.{alias}.http is required for provider http; give "
                        "at least http.body and http.output_path")
    price = cfg.get("price") or {}
    return ModelSpec(
        alias=alias, provider=cfg["provider"], model=cfg["model"], base_url=cfg.get("base_url"),
        api_key_env=cfg.get("api_key_env"), headers=tuple(sorted(cfg["headers"].items())),
        secret_headers=tuple(cfg["secret_headers"]), params=dict(cfg["params"]),
        secret_params=tuple(cfg["secret_params"]), max_concurrency=cfg.get("max_concurrency"),
        rpm=cfg.get("rpm"), tpm=cfg.get("tpm"), timeout_s=cfg.get("timeout_s"),
        server=server_spec, input_per_mtok=float(price.get("input_per_mtok", 0.0)),
        output_per_mtok=float(price.get("output_per_mtok", 0.0)),
        endpoint=cfg["endpoint"], stream=cfg["stream"], http=cfg.get("http"),
        repeats_as_n=cfg["repeats_as_n"], batch=cfg.get("batch", True),
        batch_discount=float(price.get("batch_discount", 0.5)),
        cached_input_per_mtok=price.get("cached_input_per_mtok"),
        cache_write_per_mtok=price.get("cache_write_per_mtok"),
        **spec_options(cfg, f"{where}: models.{alias}"),
    )


def build_spec(loaded: LoadedConfig, renderer: Renderer,
               stored_files: dict[str, str] | None = None) -> tuple[ExperimentSpec, dict[str, str]]:
    cfg = loaded.config
    artifacts: dict[str, str] = {}
    if not cfg["models"]:
        raise UserError(f"{_where(loaded, 'models')}: no models selected; add one to the "
                        "defaults list or pass 'models=[NAME]'")
    if not cfg["prompts"]:
        raise UserError(f"{_where(loaded, 'prompts')}: no prompts selected; add one to the "
                        "defaults list or pass 'prompts=[NAME]'")
    models = tuple(model_spec(alias, m, loaded) for alias, m in cfg["models"].items())
    prompts = []
    for name, p in cfg["prompts"].items():
        where = _where(loaded, f"prompts.{name}")
        messages = []
        if not p["messages"]:
            raise UserError(f"{where}: prompts.{name}.messages is empty; add at least one message")
        for i, m in enumerate(p["messages"]):
            if (m.get("content") is None) == (m.get("template") is None):
                raise UserError(f"{where}: prompts.{name}.messages[{i}] needs exactly one of "
                                "'content' or 'template'")
            if m["role"] not in ("system", "user", "assistant"):
                raise UserError(f"{where}: prompts.{name}.messages[{i}].role: '{m['role']}' is "
                                "not a role; use system, user or assistant")
            at = f"{where}: prompts.{name}.messages[{i}]"
            if m.get("template") is not None:
                source = renderer.load_source(m["template"], where)
                message = MessageSpec(m["role"], source, m["template"])
            else:
                message = message_spec(m["role"], m["content"], at)
            marker = cache_control(m.get("cache_control"), at)
            messages.append(replace(message, cache_control=marker) if marker else message)
        prompts.append(PromptSpec(name=name, messages=tuple(messages), vars=dict(p["vars"]),
                                  **spec_options(p, f"{where}: prompts.{name}")))
    dataset, text = load_dataset(cfg["dataset"], loaded.root, _where(loaded, "dataset"),
                                 stored_files)
    if text is not None and dataset.path is not None:
        artifacts[f"dataset:{dataset.path}"] = text
    if not dataset.rows:
        raise UserError(f"{_where(loaded, 'dataset')}: the dataset has no rows; add rows")
    g = cfg["grid"]
    if g["repeats"] < 1:
        raise UserError(f"{_where(loaded, 'grid')}: grid.repeats must be at least 1")
    for k, v in g["params"].items():
        if not v:
            raise UserError(f"{_where(loaded, 'grid')}: grid.params.{k} is an empty list; give "
                            "at least one value")
        seen: set[str] = set()
        for value in v:  # one value twice: two trials with one key (keys are unique by
            # construction, this check included: no index checks them since 0010)
            text = canonical_json(value)
            if text in seen:
                setter = Locator(loaded.choices, loaded.config_dir, loaded.overrides)
                raise UserError(f"{setter(f'grid.params.{k}')}: grid.params.{k}: {text} "
                                "appears twice; list each value once (grid.repeats samples "
                                "a point more than once)")
            seen.add(text)
    grid = GridSpec(params={k: tuple(v) for k, v in g["params"].items()}, repeats=g["repeats"])
    r = cfg["run"]
    if r["concurrency"] < 1:
        raise UserError(f"{_where(loaded, 'run')}: run.concurrency must be at least 1")
    run = RunSettings(**r)
    if run.cache not in ("off", "read", "readwrite"):
        raise UserError(f"{_where(loaded, 'run')}: run.cache: '{run.cache}' is not a cache "
                        "policy; use off, read or readwrite")
    if run.max_attempts < 1:
        raise UserError(f"{_where(loaded, 'run')}: run.max_attempts must be at least 1")
    spec = ExperimentSpec(name=cfg["name"], models=models, prompts=tuple(prompts),
                          dataset=dataset, grid=grid, run=run)
    return spec, artifacts


def check_keys(spec: ExperimentSpec, loaded: LoadedConfig) -> None:
    for m in spec.models:
        key = os.environ.get(m.api_key_env) if m.api_key_env else None
        if m.api_key_env and not key:
            raise UserError(f"{m.api_key_env} is not set: export it, or change api_key_env on "
                            f"model '{m.alias}' in {_where(loaded, 'models.' + m.alias)}")
        if key is not None and (key != key.strip() or any(ord(c) < 32 or ord(c) == 127
                                                           for c in key)):
            # A key read from a CRLF .env file ends in \r: no HTTP header may carry it.
            raise UserError(f"{m.api_key_env} holds a line break, a control character or "
                            "spaces around the key; export the key alone (model "
                            f"'{m.alias}')")


def _check_requests(spec: ExperimentSpec, renderer: Renderer) -> None:
    """Build one request per model and prompt, so a provider-side template error (the http
    provider's body) stops the run here, before anything is recorded or sent."""
    row = spec.dataset.rows[0]
    point = {k: v[0] for k, v in spec.grid.params.items()}
    for model in spec.models:
        provider = get_provider(model.provider)
        for prompt in spec.prompts:
            messages = renderer.render(prompt, row, spec.dataset.name)
            provider.build_request(model, ProviderRequest(model.model, messages,
                                                          {**model.params, **point}), "check")


def prepare(loaded: LoadedConfig, stored: dict[str, str] | None = None,
            check_api_keys: bool = True) -> Prepared:
    """Build and fully check an experiment; raises UserError before any call is made.

    With `stored` (artifacts by name, as `Prepared.artifacts` has them: ``template:NAME``,
    ``dataset:PATH``) templates and datasets come from there instead of the disk.
    """
    prompt_files = {name: _where(loaded, f"prompts.{name}") for name in loaded.config["prompts"]}
    if stored is not None:
        templates: Path | dict[str, str] = {
            k.removeprefix("template:"): v for k, v in stored.items() if k.startswith("template:")}
        files: dict[str, str] | None = {
            k.removeprefix("dataset:"): v for k, v in stored.items() if k.startswith("dataset:")}
        images: dict[str, str] | None = {
            k.removeprefix("image:"): v for k, v in stored.items() if k.startswith("image:")}
    else:
        templates, files, images = Path(loaded.root) / "templates", None, None
    renderer = Renderer(templates, prompt_files, images)
    spec, artifacts = build_spec(loaded, renderer, files)
    if check_api_keys:
        check_keys(spec, loaded)
    for prompt in spec.prompts:
        for row in spec.dataset.rows:
            renderer.render(prompt, row, spec.dataset.name)
    _check_requests(spec, renderer)
    scorers = resolve_judges(build_scorers(loaded.config, _where(loaded, "scorers")), loaded,
                             renderer)
    for name, source in renderer.loader.sources.items():
        artifacts[f"template:{name}"] = source
    for path, url in renderer.images.files.items():  # stored once; bodies reference them
        artifacts[f"image:{path}"] = url
    return Prepared(spec=spec, renderer=renderer, loaded=loaded, artifacts=artifacts,
                    scorers=scorers)


def resolve_judges(scorers: ScorerSet, loaded: LoadedConfig, renderer: Renderer) -> ScorerSet:
    """The set with every judge's model and template resolved now, before any call."""
    judges: dict[str, JudgeSpec] = {}
    for name, (scorer, _) in scorers.scorers.items():
        if scorer.fn is not None:
            continue
        cfg = scorer.config
        alias, model_cfg = judge_model_config(cfg, loaded.config.get("models", {}),
                                              loaded.config_dir, loaded.choices)
        source = renderer.load_source(cfg["template"], f"scorers.{name}.template")
        judges[name] = JudgeSpec(model=model_spec(alias, model_cfg, loaded),
                                 template=cfg["template"], source=source,
                                 threshold=cfg.get("threshold"),
                                 config={**cfg, "model_config": model_cfg})
    return ScorerSet(scorers.scorers, judges)
