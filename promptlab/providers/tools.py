"""Tools, tool choice and structured output: one neutral form, each API's own on the wire.

A tool is ``{name, description, parameters}`` (parameters a JSON schema). `tool_choice` is
``auto``, ``none``, ``required`` or the name of one tool. `response_format` is Chat
Completions' form: ``{type: json_schema, json_schema: {name, schema, strict}}`` or
``{type: json_object}``. A prompt's options replace its model's. Pure translation; the
checks say what is wrong in one line (prepare turns them into user errors).
"""

from __future__ import annotations

from typing import Any

from promptlab.errors import UserError
from promptlab.providers.base import ProviderRequest, ToolCall
from promptlab.spec import ModelSpec, PromptSpec

__all__ = [
    "anthropic_tools",
    "chat_tools",
    "check_response_format",
    "check_tool_choice",
    "check_tools",
    "fingerprint_params",
    "request_options",
    "responses_text_format",
    "responses_tools",
    "spec_options",
    "tool_calls_value",
    "wants_json",
]

_CHOICE_WORDS = ("auto", "none", "required")


def request_options(model: ModelSpec, prompt: PromptSpec) -> dict[str, Any]:
    """The ProviderRequest keyword options for a (model, prompt): the prompt's own win."""
    return {"tools": prompt.tools or model.tools,
            "tool_choice": prompt.tool_choice if prompt.tool_choice is not None
            else model.tool_choice,
            "response_format": prompt.response_format if prompt.response_format is not None
            else model.response_format}


def fingerprint_params(params: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The params a request's cache fingerprint hashes: with its set options under
    ``@request`` (no options: the params themselves, so older fingerprints still match)."""
    chosen = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
              if v not in (None, ())}
    return {**params, "@request": chosen} if chosen else params


def spec_options(cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """A model's or prompt's checked tools, tool_choice and response_format (spec fields);
    raises a one-line UserError starting with `where`."""
    try:
        tools = check_tools(cfg.get("tools"))
        return {"tools": tools, "tool_choice": check_tool_choice(cfg.get("tool_choice"), tools),
                "response_format": check_response_format(cfg.get("response_format"))}
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def check_tools(tools: Any) -> tuple[dict[str, Any], ...]:
    """Validated neutral tools; raises ValueError saying which and why."""
    if tools is None:
        return ()
    if not isinstance(tools, list | tuple):
        raise ValueError("tools must be a list of {name, description, parameters}")
    seen: set[str] = set()
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise ValueError(f"tools[{i}] needs a name (and description, parameters)")
        unknown = sorted(set(tool) - {"name", "description", "parameters"})
        if unknown:
            raise ValueError(f"tools[{i}] ({tool['name']}): unknown key {unknown[0]!r}; a tool "
                             "has name, description and parameters (a JSON schema)")
        params = tool.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"tools[{i}] ({tool['name']}): parameters must be a JSON schema "
                             "mapping")
        if tool["name"] in seen:
            raise ValueError(f"tools[{i}]: the name {tool['name']!r} is used twice")
        seen.add(tool["name"])
        out.append({"name": tool["name"], "description": tool.get("description") or "",
                    "parameters": params or {"type": "object", "properties": {}}})
    return tuple(out)


def check_tool_choice(choice: Any, tools: tuple[dict[str, Any], ...]) -> Any:
    if choice is None or choice in _CHOICE_WORDS:
        return choice
    if isinstance(choice, str) and (not tools or any(t["name"] == choice for t in tools)):
        return choice  # with no tools here, the name is checked against the model's at run
    names = ", ".join(t["name"] for t in tools) or "no tools are declared"
    raise ValueError(f"tool_choice {choice!r} is not auto, none, required or a tool name "
                     f"({names})")


def check_response_format(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict) and value.get("type") == "json_object":
        return value
    if (isinstance(value, dict) and value.get("type") == "json_schema"
            and isinstance(value.get("json_schema"), dict)
            and isinstance(value["json_schema"].get("schema"), dict)):
        return value
    raise ValueError("response_format must be {type: json_object} or {type: json_schema, "
                     "json_schema: {name, schema, strict}}")


def chat_tools(request: ProviderRequest) -> dict[str, Any]:
    """Chat Completions' ``tools``, ``tool_choice`` and ``response_format`` fields."""
    out: dict[str, Any] = {}
    if request.tools:
        out["tools"] = [{"type": "function", "function": dict(t)} for t in request.tools]
    if request.tool_choice is not None:
        out["tool_choice"] = (request.tool_choice if request.tool_choice in _CHOICE_WORDS else
                              {"type": "function", "function": {"name": request.tool_choice}})
    if request.response_format is not None:
        out["response_format"] = request.response_format
    return out


def responses_tools(request: ProviderRequest) -> dict[str, Any]:
    """The Responses API's flat ``tools`` and its ``tool_choice``."""
    out: dict[str, Any] = {}
    if request.tools:
        out["tools"] = [{"type": "function", **t} for t in request.tools]
    if request.tool_choice is not None:
        out["tool_choice"] = (request.tool_choice if request.tool_choice in _CHOICE_WORDS else
                              {"type": "function", "name": request.tool_choice})
    return out


def responses_text_format(response_format: Any) -> dict[str, Any] | None:
    """``text.format`` for a Chat-form response_format."""
    if response_format is None:
        return None
    if response_format.get("type") == "json_schema":
        return {"type": "json_schema", **response_format["json_schema"]}
    return {"type": "json_object"}


def anthropic_tools(request: ProviderRequest) -> dict[str, Any]:
    """Anthropic's ``tools`` (input_schema) and ``tool_choice`` (auto, any, tool, none)."""
    out: dict[str, Any] = {}
    if request.tools:
        out["tools"] = [{"name": t["name"], "description": t["description"],
                         "input_schema": t["parameters"]} for t in request.tools]
    choice = request.tool_choice
    if choice is not None:
        out["tool_choice"] = ({"type": "any"} if choice == "required" else
                              {"type": choice} if choice in _CHOICE_WORDS else
                              {"type": "tool", "name": choice})
    return out


def tool_calls_value(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """The calls as stored (``results.tool_calls_json``): name and arguments, in order."""
    return [{"name": c.name, "arguments": c.arguments, **({"id": c.id} if c.id else {})}
            for c in calls]


def wants_json(request_options: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether a request asked for JSON output (its parsed value is then stored)."""
    if request_options.get("response_format") is not None:
        return True
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        return True
    text = params.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
