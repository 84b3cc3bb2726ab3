"""Request fingerprints: the cache key, and the fields it is made of.

A fingerprint is the sha256 of the canonical JSON of what can change an answer: provider,
endpoint identity (a managed server's, not its random port), model, rendered messages,
params and the repeat index (so repeats are distinct samples). Concurrency, timeouts,
retries and budgets are left out. The database is the cache: a hit is a stored fresh ok
result with the same fingerprint.
"""

from __future__ import annotations

from typing import Any

from promptlab.canonical import canonical_json, hash_value, sha256_hex
from promptlab.spec import ModelSpec

__all__ = ["fingerprint", "fingerprint_fields", "fingerprint_from_parts", "estimate_tokens"]


def fingerprint_fields(model: ModelSpec, messages: list[dict[str, str]], params: dict[str, Any],
                       repeat: int) -> dict[str, Any]:
    return {"provider": model.provider, "endpoint": model.endpoint_identity(),
            "model": model.model, "messages": messages, "params": params, "repeat": repeat}


def fingerprint(model: ModelSpec, messages: list[dict[str, str]], params: dict[str, Any],
                repeat: int) -> str:
    return hash_value(fingerprint_fields(model, messages, params, repeat))


def fingerprint_from_parts(model: ModelSpec, messages_canonical: str, params_canonical: str,
                           repeat: int) -> str:
    """`fingerprint`, from canonical JSON already made (the hot path); equal by contract."""
    parts = _MODEL_PARTS.get(model)
    if parts is None:
        parts = _MODEL_PARTS[model] = (
            f'{{"endpoint":{canonical_json(model.endpoint_identity())},"messages":',
            f',"model":{canonical_json(model.model)},"params":',
            f',"provider":{canonical_json(model.provider)},"repeat":')
    head, middle, tail = parts
    return sha256_hex(f"{head}{messages_canonical}{middle}{params_canonical}{tail}{repeat}}}")


_MODEL_PARTS: dict[ModelSpec, tuple[str, str, str]] = {}


def estimate_tokens(messages: list[dict[str, str]], params: dict[str, Any]) -> int:
    """A rough budget estimate: ~4 characters a token in, max_tokens (or 256) out."""
    chars = sum(len(m["content"]) for m in messages)
    out = params.get("max_tokens") or params.get("max_completion_tokens") or 256
    return chars // 4 + 4 * len(messages) + int(out)
