"""Canonical JSON and hashing: the contract behind trial keys and fingerprints.

Canonical JSON is ``json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8; a hash is the hex sha256 of those bytes.
Changing this changes every stored key, so it only changes with a migration.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

__all__ = ["canonical_json", "finite", "sha256_hex", "hash_value"]


# One encoder for every call: `json.dumps` with options builds a new one each time (a third
# of the cost of encoding a small dict, nine tenths of a short string's).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _ENCODER.encode(value)


def sha256_hex(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def hash_value(value: Any) -> str:
    return sha256_hex(canonical_json(value))


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float made None, so the JSON written is JSON
    (``Infinity`` is not): a scorer may return ``float("inf")``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
