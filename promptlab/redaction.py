"""Secrets: collect every credential a run uses and keep it out of whatever is stored or
printed.

A secret is an API key (from its variable), the value of a header that is always secret
(``Authorization``, ``x-api-key``, ...) or named in a model's ``secret_headers``, and the
value of a URL or body parameter named in ``secret_params`` (or one of the usual key
names). Stored text holds a secret in more forms than one: JSON escapes quotes and
backslashes (once in ``runs.config_json``, twice where JSON text is itself a JSON string),
URLs percent-encode, and an override typed on the command line carries Hydra's quoting.
`Scrubber` removes every such form; `redact_config` and `redact_overrides` redact by
structure (the secret settings, whatever their values) what the CLI prints.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from promptlab.spec import ModelSpec

__all__ = ["REDACTED", "ALWAYS_SECRET_HEADERS", "SECRET_PARAM_NAMES", "Scrubber",
           "redact_config", "redact_headers", "redact_overrides", "redact_url", "secret_forms"]

REDACTED = "[REDACTED]"
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key",
                                   "proxy-authorization", "x-goog-api-key"})
SECRET_PARAM_NAMES = frozenset({"key", "api_key", "apikey", "token"})
MIN_SECRET = 4  # shorter values would blank out ordinary text


def redact_headers(headers: dict[str, str], secret: frozenset[str]) -> dict[str, str]:
    """Headers with every credential replaced, safe to store or log."""
    return {k: (REDACTED if k.lower() in secret or k.lower() in ALWAYS_SECRET_HEADERS else v)
            for k, v in headers.items()}


def _param_names(secret_params: Iterable[str]) -> set[str]:
    return {p.lower() for p in secret_params} | SECRET_PARAM_NAMES


def redact_url(url: str, secret_params: Iterable[str] = ()) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    names = _param_names(secret_params)
    query = [(k, REDACTED if k.lower() in names else v) for k, v in parse_qsl(parts.query,
                                                                               True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


def _url_secrets(url: str | None, secret_params: Iterable[str]) -> set[str]:
    if not url or "?" not in url:
        return set()
    names = _param_names(secret_params)
    return {v for k, v in parse_qsl(urlsplit(url).query, True) if k.lower() in names}


def _hydra_quoted(value: str, quote_char: str) -> str:
    """`value` as written between `quote_char`s in a Hydra override: the quote escaped, and
    backslashes doubled where they precede a quote or the end."""
    return re.sub(r"(\\*)(" + re.escape(quote_char) + r"|\Z)",
                  lambda m: m.group(1) * 2 + ("\\" + quote_char if m.group(2) else ""), value)


def secret_forms(value: str) -> set[str]:
    """Every form `value` can take in text promptlab stores or prints: itself, URL-encoded,
    inside a quoted Hydra override, and each of those JSON-escaped once or twice (with
    and without ASCII escapes)."""
    base = {value, quote(value, safe=""), quote_plus(value), _hydra_quoted(value, "'"),
            _hydra_quoted(value, '"')}
    forms = set(base)
    for form in base:
        for ascii_only in (True, False):
            once = json.dumps(form, ensure_ascii=ascii_only)[1:-1]
            forms.update((once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]))
    return {f for f in forms if f}


def model_secrets(m: ModelSpec) -> set[str]:
    """The secret values a model's config and environment hold."""
    values: set[str] = set()
    if m.api_key_env and os.environ.get(m.api_key_env):
        values.add(os.environ[m.api_key_env])
    secret_names = {h.lower() for h in m.secret_headers} | ALWAYS_SECRET_HEADERS
    for name, value in m.headers:
        if name.lower() in secret_names:
            values.add(value)
    values |= _url_secrets(m.base_url, m.secret_params)
    values |= _url_secrets(str((m.http or {}).get("path") or ""), m.secret_params)
    names = _param_names(m.secret_params)
    values |= {str(v) for k, v in m.params.items() if k.lower() in names and v is not None}
    return values


class Scrubber:
    """Replaces every known secret value, in every form it can take, in a text."""

    def __init__(self, models: tuple[ModelSpec, ...]) -> None:
        values: set[str] = set()
        for m in models:
            values |= model_secrets(m)
        forms = {f for v in values if len(v) >= MIN_SECRET for f in secret_forms(v)}
        # Longest first, so a secret that contains another is removed whole.
        self.values = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None or not self.values:
            return text
        for v in self.values:
            if v in text:
                text = text.replace(v, REDACTED)
        return text


def redact_config(config: dict[str, Any]) -> dict[str, Any]:
    """A plain experiment config with every secret setting's value replaced: secret
    headers, URL parameters of ``base_url`` and ``http.path``, and secret params."""
    models = config.get("models")
    if not isinstance(models, dict):
        return config
    out = dict(config)
    out["models"] = {alias: _redact_model(m) if isinstance(m, dict) else m
                     for alias, m in models.items()}
    return out


def _redact_model(m: dict[str, Any]) -> dict[str, Any]:
    m = dict(m)
    secret_params = [str(p) for p in m.get("secret_params") or ()]
    secret_names = {str(h).lower() for h in m.get("secret_headers") or ()} | (
        ALWAYS_SECRET_HEADERS)
    if isinstance(m.get("headers"), dict):
        m["headers"] = {k: REDACTED if str(k).lower() in secret_names else v
                        for k, v in m["headers"].items()}
    if isinstance(m.get("base_url"), str):
        m["base_url"] = redact_url(m["base_url"], secret_params)
    if isinstance(m.get("http"), dict) and isinstance(m["http"].get("path"), str):
        m["http"] = {**m["http"], "path": redact_url(m["http"]["path"], secret_params)}
    if isinstance(m.get("params"), dict):
        names = _param_names(secret_params)
        m["params"] = {k: REDACTED if str(k).lower() in names else v
                       for k, v in m["params"].items()}
    return m


# A Hydra override (``+models.a.headers.X=v``, ``++models.a.base_url=...``) that sets a
# model's headers, a key-named setting or a URL, found anywhere in a line of text.
_OVERRIDE = re.compile(r"(?:^|(?<=\s))(?P<key>(?:~|\+{1,2})?models\.[^\s=]+?)=", re.MULTILINE)
_URL_KEYS = ("base_url", "path")


def _value_end(text: str, start: int) -> int:
    """Where an override's value that begins at `start` ends: at whitespace outside
    quotes and brackets (Hydra values may quote, and nest lists and dicts)."""
    depth, quote_char, i = 0, "", start
    while i < len(text):
        c = text[i]
        if quote_char:
            if c == "\\":
                i += 1
            elif c == quote_char:
                quote_char = ""
        elif c in "'\"":
            quote_char = c
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            if depth == 0:
                return i
            depth -= 1
        elif c.isspace() and depth == 0:
            return i
        i += 1
    return i


def _secret_key(key: str) -> str | None:
    """'all' when every value set by this override key is secret, 'url' when it is a URL
    whose key parameters are, None when it is not a secret setting."""
    parts = key.lstrip("+~").split(".")
    if len(parts) < 3:
        return None
    rest = [p.lower() for p in parts[2:]]
    if "headers" in rest or rest[-1] in SECRET_PARAM_NAMES | ALWAYS_SECRET_HEADERS:
        return "all"
    if rest[-1] in _URL_KEYS:
        return "url"
    return None


def redact_overrides(text: str) -> str:
    """Text (a command line, a sweep's job line) with the values of overrides that set
    secrets redacted: any model header (which headers are secret is known only to the
    config), key-named settings, and key parameters of URLs."""
    out, pos = [], 0
    for m in _OVERRIDE.finditer(text):
        if m.start() < pos:
            continue
        kind = _secret_key(m.group("key"))
        if kind is None:
            continue
        end = _value_end(text, m.end())
        value = text[m.end():end]
        if kind == "url":
            redacted = re.sub(r"([?&](?:" + "|".join(sorted(SECRET_PARAM_NAMES)) + r")=)"
                              r"[^&\s'\"]*", r"\1" + REDACTED, value, flags=re.IGNORECASE)
        else:
            redacted = REDACTED
        out.append(text[pos:m.end()] + redacted)
        pos = end
    out.append(text[pos:])
    return "".join(out)
