"""A record the database refused, made storable: every value fitted to its column, and a
result that says what was done and what the database said (`error_row`). The writer
stores it in place of the record (store/writer.py), so one bad value costs its own record
and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Integer, String

from promptlab.store.faults import said
from promptlab.store.fitting import as_text, fit_float, fit_int, fit_text, shorten
from promptlab.store.store import Record, utcnow
from promptlab.store.tables import Base

__all__ = ["LIMITS", "MESSAGE_CAP", "TEXT_CAP", "error_row"]

TEXT_CAP = 10_000_000  # characters of a Text column kept in an error row
MESSAGE_CAP = 1000  # characters of an error row's message
_SURROGATES = re.compile("[\ud800-\udfff]")


# -- fitting values to columns (the rules are in promptlab.store.fitting) --------------

@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # text, int, float, bool, time
    limit: int | None
    nullable: bool
    key: bool
    identity: bool


def _columns(table: str) -> tuple[_Column, ...]:
    out = []
    for c in Base.metadata.tables[table].columns:
        t = c.type
        kind = ("text" if isinstance(t, String) else "bool" if isinstance(t, Boolean)
                else "int" if isinstance(t, Integer) else "float" if isinstance(t, Float)
                else "time" if isinstance(t, DateTime) else "other")
        limit = t.length if isinstance(t, String) else None
        # A trial's short strings name things that reports group and join by.
        out.append(_Column(c.name, kind, limit, bool(c.nullable), bool(c.primary_key),
                           identity=table == "trials" and limit is not None))
    return tuple(out)


_TABLES = {name: _columns(name) for name in ("trials", "attempts", "results")}
LIMITS: dict[str, dict[str, int]] = {
    name: {c.name: c.limit for c in cols if c.limit is not None}
    for name, cols in _TABLES.items()}


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fit(col: _Column, value: object) -> tuple[object, str | None]:
    """The value made storable in this column, and what was done to it (None: nothing)."""
    if col.key or (value is None and col.nullable):
        return value, None  # a key is ours: a wrong one is a bug, not a value to mend
    if value is None:
        empty = {"text": "", "int": 0, "float": 0.0, "bool": False, "time": utcnow()}
        return empty.get(col.kind), "missing, stored as an empty value"
    if col.kind == "text":
        return _fit_text_column(col, value)
    if col.kind in ("int", "float"):
        number = fit_int(value) if col.kind == "int" else fit_float(value)
        if number is None:
            what = "a 32-bit integer" if col.kind == "int" else "a finite number"
            return (None if col.nullable else 0), f"{_preview(value)} is not {what}"
        quiet = type(value) is int or (col.kind == "float" and type(value) is float)
        return number, None if quiet else f"{_preview(value)} stored as {number}"
    if col.kind == "bool" and not isinstance(value, bool):
        return value in (1, "1", "true"), f"{_preview(value)} is not true or false"
    if col.kind == "time" and not isinstance(value, datetime):
        return (None if col.nullable else utcnow()), f"{_preview(value)} is not a time"
    return value, None


def _fit_text_column(col: _Column, value: object) -> tuple[str, str | None]:
    why: list[str] = []
    text = value if type(value) is str else as_text(value)
    if type(value) is not str:
        made = "text" if isinstance(value, bytes | bytearray) else "JSON text"
        why.append(f"{type(value).__name__} ({_preview(value)}), not str: stored as {made}")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        why.append("NUL characters replaced (PostgreSQL text cannot hold them)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATES.sub("\ufffd", text)
        why.append("unpaired surrogates replaced (UTF-8 cannot encode them)")
    limit = col.limit or TEXT_CAP
    if len(text) > limit:
        why.append(f"{len(text)} characters, over its {limit}: cut"
                   + (", with a hash of the whole" if col.identity else " with a marker"))
        text = shorten(text, limit, col.identity)
    return text, "; ".join(why) or None


def _storable(table: str, row: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    out = dict(row)
    for col in _TABLES[table]:
        if col.name in out:
            out[col.name], why = _fit(col, out[col.name])
            if why is not None:
                note = f"{table}.{col.name}: {why}"
                if note not in notes:
                    notes.append(note)
    return out


def error_row(record: Record, refused: BaseException, *, attempts: bool = True) -> Record:
    """The record as an error row: every value fitted to its column, the result marked
    status "error", error_kind "unstorable", with a message naming what could not be stored
    as it came and what the database said. Without `attempts`, its attempts are left out."""
    notes: list[str] = []
    trial = _storable("trials", record.trial, notes)
    kept = [_storable("attempts", a, notes) for a in record.attempts] if attempts else []
    result = _storable("results", record.result if record.copy_of is None else {
        "attempts": 0, "cache_hit": False, **record.result}, notes)  # a hit's own part
    if not attempts and record.attempts:
        notes.append(f"its {len(record.attempts)} attempt(s) could not be stored at all")
    message = ("could not store this trial as it came: " + ("; ".join(notes) or
               "no value looked wrong") + f" (the database said {said(refused)})")
    result.update(status="error", error_kind="unstorable", cacheable=False,
                  error=fit_text(message, MESSAGE_CAP))
    return Record(trial, result, kept, record.trial_exists)
