"""Secrets: collect every credential a run uses and scrub it from whatever is stored."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from promptlab.spec import ModelSpec

__all__ = ["REDACTED", "ALWAYS_SECRET_HEADERS", "Scrubber", "redact_headers", "redact_url"]

REDACTED = "[REDACTED]"
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key",
                                   "proxy-authorization", "x-goog-api-key"})


def redact_headers(headers: dict[str, str], secret: frozenset[str]) -> dict[str, str]:
    """Headers with every credential replaced, safe to store or log."""
    return {k: (REDACTED if k.lower() in secret or k.lower() in ALWAYS_SECRET_HEADERS else v)
            for k, v in headers.items()}


def redact_url(url: str, secret_params: tuple[str, ...]) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    names = {p.lower() for p in secret_params} | {"key", "api_key", "apikey", "token"}
    query = [(k, REDACTED if k.lower() in names else v) for k, v in parse_qsl(parts.query,
                                                                               True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


class Scrubber:
    """Replaces every known secret value in a text (keys, secret headers and params)."""

    def __init__(self, models: tuple[ModelSpec, ...]) -> None:
        values: set[str] = set()
        for m in models:
            if m.api_key_env and os.environ.get(m.api_key_env):
                values.add(os.environ[m.api_key_env])
            for name, value in m.headers:
                if name.lower() in {h.lower() for h in m.secret_headers} | ALWAYS_SECRET_HEADERS:
                    values.add(value)
        # Longest first, so a secret that contains another is removed whole.
        self.values = sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None or not self.values:
            return text
        for v in self.values:
            if v in text:
                text = text.replace(v, REDACTED)
        return text
