"""The rules for fitting a value to its column: text, 32-bit integers, finite floats,
bounded strings. The runner applies them to what it records (cheaply: most values pass
one type check), and the writer's `error_row` to every column of a refused record.
"""

from __future__ import annotations

import hashlib
import json
import math

__all__ = ["as_text", "fit_float", "fit_int", "fit_text", "shorten"]

_I32 = 2**31


def fit_text(value: object, limit: int | None = None, *, identity: bool = False) -> str | None:
    """Text for a text column: None stays None, other non-text becomes JSON text (bytes are
    decoded), and text longer than `limit` is cut with a visible marker, ``…[612 chars]``;
    an `identity` (a row id, a model alias) keeps a hash of the whole instead, ``…#<16 hex>``,
    so that different long values stay different."""
    if type(value) is not str:
        if value is None:
            return None
        value = as_text(value)
    if limit is not None and len(value) > limit:
        return shorten(value, limit, identity)
    return value


def fit_int(value: object) -> int | None:
    """A 32-bit integer (the portable INTEGER), or None: integral floats and numeric text are
    converted; bools, fractions, NaN, infinities and anything larger are not numbers here."""
    if type(value) is int:
        return value if -_I32 <= value < _I32 else None
    if type(value) is float:
        if not value.is_integer():  # also NaN and the infinities
            return None
        value = int(value)
    elif type(value) is str:
        try:
            value = int(value)
        except ValueError:
            return None
    else:
        return None
    return value if -_I32 <= value < _I32 else None


def fit_float(value: object) -> float | None:
    """A finite float, or None (NaN, the infinities, bools and non-numbers)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int or type(value) is str:
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return None
        return number if math.isfinite(number) else None
    return None


def as_text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):  # keys JSON cannot hold, or a cycle
        return repr(value)


def shorten(value: str, limit: int, identity: bool) -> str:
    if identity:
        whole = value.encode("utf-8", "surrogatepass")
        tail = "…#" + hashlib.sha256(whole).hexdigest()[:16]
    else:
        tail = f"…[{len(value)} chars]"
    return (value[:max(limit - len(tail), 0)] + tail)[:limit]
