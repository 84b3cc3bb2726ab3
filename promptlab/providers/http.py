"""The generic HTTP provider: any JSON REST API, declared in config instead of code.

The request body is a sandboxed Jinja2 template (variables: ``messages``, ``params``,
``model``, ``prompt`` = every message's text joined, ``system``, ``user``); output text,
usage and model name are read from dotted paths into the JSON response. Retry
classification is the common one, overridden per status by ``retry_on``.
"""

from __future__ import annotations

import json
from typing import Any, cast

import jinja2

from promptlab.errors import ProviderError, UserError
from promptlab.providers.base import (
    ErrorKind,
    HttpRequest,
    ProviderRequest,
    ProviderResponse,
    StreamParser,
    api_url,
    base_headers,
    classify_status,
    dumps,
)
from promptlab.providers.normalize import describe, load_json, make_response
from promptlab.sandbox import BoundedSandbox, render_bounded
from promptlab.spec import ModelSpec

__all__ = ["HttpProvider", "dig"]

_KINDS = ("rate_limit", "transient", "auth", "fatal")
_NO_STREAM = "provider http does not stream; set stream: false"


def dig(data: Any, path: str) -> Any:
    """Follow a dotted path (``a.0.b``) into parsed JSON; KeyError when it is not there."""
    node = data
    for part in path.split("."):
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise KeyError(path) from None
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(path)
    return node


class HttpProvider:
    name = "http"
    default_base_url = ""

    def __init__(self) -> None:
        self._env = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)
        # `tojson` would hand an undefined name to json.dumps and fail with a TypeError;
        # this makes it the same "'x' is undefined" error as a plain {{ x }}.
        self._env.policies["json.dumps_kwargs"] = {
            **self._env.policies["json.dumps_kwargs"], "default": _undefined_to_json}
        self._templates: dict[str, jinja2.Template] = {}

    def build_request(self, model: ModelSpec, request: ProviderRequest,
                      api_key: str | None) -> HttpRequest:
        cfg = model.http or {}
        if model.stream:
            raise UserError(_NO_STREAM)
        tpl = self._templates.get(cfg["body"])
        if tpl is None:
            try:
                tpl = self._templates[cfg["body"]] = self._env.from_string(cfg["body"])
            except jinja2.TemplateSyntaxError as exc:
                raise UserError(f"models.{model.alias}.http.body: template syntax error: "
                                f"{exc.message}") from None
        variables = {
            "messages": request.messages, "params": request.params, "model": request.model,
            "prompt": "\n".join(m["content"] for m in request.messages),
            "system": "\n\n".join(m["content"] for m in request.messages
                                  if m["role"] == "system"),
            "user": next((m["content"] for m in reversed(request.messages)
                          if m["role"] == "user"), ""),
        }
        try:
            text = render_bounded(tpl, variables)
        except jinja2.UndefinedError as exc:
            raise UserError(f"models.{model.alias}.http.body: {exc.message}; the body can use "
                            "messages, params, model, prompt, system and user") from None
        except (jinja2.TemplateError, TypeError, ArithmeticError) as exc:
            raise UserError(f"models.{model.alias}.http.body does not render: "
                            f"{type(exc).__name__}: {exc}") from None
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise UserError(f"models.{model.alias}.http.body does not render to JSON ({exc}); "
                            "use the tojson filter for values, e.g. {{ prompt | tojson }}"
                            ) from None
        headers = base_headers(model)
        secret = {h.lower() for h in model.secret_headers}
        url = api_url(model.base_url or "", cfg.get("path", "").replace("{model}", request.model))
        if api_key and cfg.get("api_key_header"):
            headers[cfg["api_key_header"].lower()] = api_key
            secret.add(cfg["api_key_header"].lower())
        if api_key and cfg.get("api_key_param"):
            url += ("&" if "?" in url else "?") + f"{cfg['api_key_param']}={api_key}"
        return HttpRequest(cfg.get("method", "POST").upper(), url, headers, dumps(body),
                           frozenset(secret))

    def parse_response(self, model: ModelSpec, status: int, body: bytes) -> ProviderResponse:
        cfg = model.http or {}
        output_path = cfg["output_path"]  # required by the config schema
        data = load_json(body, "response")
        try:
            text = dig(data, output_path)
        except KeyError:
            raise ProviderError(f"response has no {output_path}: {describe(data)}",
                                "transient") from None

        def optional(key: str) -> Any:
            path = cfg.get(key)
            if not path:
                return None
            try:
                return dig(data, path)
            except KeyError:
                return None

        return make_response(text, optional("finish_reason_path"),
                             optional("input_tokens_path"), optional("output_tokens_path"),
                             optional("model_path"))

    def classify(self, model: ModelSpec, status: int, body: bytes) -> ErrorKind:
        kind = ((model.http or {}).get("retry_on") or {}).get(str(status))
        if kind in _KINDS:
            return cast(ErrorKind, kind)
        return classify_status(status)

    def stream_parser(self) -> StreamParser:
        raise UserError(_NO_STREAM)


def _undefined_to_json(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined: raises UndefinedError naming the missing variable
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
