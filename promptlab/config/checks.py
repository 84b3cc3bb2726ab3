"""Checks of a resolved config that the schema's types cannot say: the value rules
(`promptlab.config.rules`), and the formats of URLs and HTTP headers, so a typo in a URL is
a config error now rather than retried "transient" failures during the run."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from promptlab.config import rules
from promptlab.config.locate import Where
from promptlab.config.paths import join_key
from promptlab.errors import ConfigError

__all__ = ["check", "url_problem"]

# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check(config: dict[str, Any], where: Where) -> None:
    """Raise a one-line ConfigError for the first setting that is wrong."""
    rules.check(config, where)
    for alias, model in (config.get("models") or {}).items():
        level = join_key("models", str(alias))
        _check_model(model, level, where)


def _check_model(model: dict[str, Any], level: str, where: Where) -> None:
    url = model.get("base_url")
    if isinstance(url, str):
        problem = url_problem(url)
        if problem is not None:
            key = f"{level}.base_url"
            raise ConfigError(f"{where(key)}: {key}: {url!r} {problem}")
    headers_key = f"{level}.headers"
    for name, value in (model.get("headers") or {}).items():
        if not _HEADER_NAME.match(str(name)):
            raise ConfigError(f"{where(headers_key)}: {headers_key}: {str(name)!r} is not a "
                              "header name; use letters, digits and - only")
        if isinstance(value, str) and _CONTROL.search(value):
            key = join_key(headers_key, str(name))
            what = "a line break" if re.search(r"[\r\n]", value) else "a control character"
            raise ConfigError(f"{where(key)}: {key}: the value contains {what}; a header "
                              "value must be one line of text")
    server = model.get("server")
    if isinstance(server, dict):
        path = server.get("ready_path")
        if isinstance(path, str) and not path.startswith("/"):
            key = f"{level}.server.ready_path"
            raise ConfigError(f"{where(key)}: {key}: {path!r} must start with /; write "
                              f"/{path}")


def url_problem(url: str) -> str | None:
    """What is wrong with an API's base URL, or None. ``{port}`` stands for a managed
    server's port."""
    if any(c.isspace() for c in url):
        return "contains a space or line break; remove it (a space in a path is %20)"
    try:
        parts = urlsplit(url.replace("{port}", "1"))
    except ValueError as exc:  # e.g. "http://[::1": an unclosed IPv6 host
        return f"cannot be read as a URL ({exc}); write it like http://[::1]:8080/v1"
    if parts.scheme in ("http", "https") and parts.netloc:
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError as exc:
            return f"has a bad port ({exc}); write a number from 1 to 65535"
        if not parts.hostname:
            return "has no host; write it like http://127.0.0.1:8080/v1"
        return None
    if parts.scheme and parts.netloc:
        return f"uses {parts.scheme}:, but an API is reached over http:// or https://"
    match = re.match(r"^(https?)[:/]*(.*)$", url)
    example = f"{match[1]}://{match[2]}" if match else f"http://{url.lstrip(':/')}"
    return f"is not an http(s) URL; write the scheme too, e.g. {example}"
