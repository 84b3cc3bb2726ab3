"""Datasets: inline rows, JSONL and CSV files, each row with a stable id.

A row's id is the value of the dataset's ``id_field`` when set (or of an ``id`` column when
present), otherwise the first 12 hex digits of the sha256 of the row's canonical JSON, so
an id survives reordering the file. Identical rows get ``-2``, ``-3``, ... suffixes.

Files are UTF-8 (a leading byte order mark is ignored) and are read as their formats
define records, never split with ``str.splitlines``:

- JSONL: one JSON object per line, lines end with ``\\n`` or ``\\r\\n`` only, so a string
  may hold U+2028, U+2029 or any other character JSON allows. Blank lines are skipped.
- CSV: the ``csv`` module's records, so a quoted field may hold commas, quotes and line
  breaks. The first line is the header: every column needs a name, and names are unique.
  Every row has exactly as many fields as the header: a short row is an error naming the
  missing columns (write an empty value as ``,,`` or ``""``), a long one is an error too,
  because guessing which value belongs where would score the wrong thing. Blank lines
  are skipped.

Errors name ``file:line``, the physical line where the bad record starts.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptlab.canonical import hash_value
from promptlab.errors import UserError
from promptlab.spec import DatasetSpec, Row

__all__ = ["load_dataset", "make_rows", "read_text"]

_JSON_KINDS = {list: "a JSON array", str: "a JSON string", int: "a JSON number",
               float: "a JSON number", bool: "JSON true or false", type(None): "JSON null"}


def load_dataset(cfg: dict[str, Any], root: Path, where: str,
                 stored: dict[str, str] | None = None) -> tuple[DatasetSpec, str | None]:
    """Build the dataset from its config; returns the spec and the file's text (if a file).

    With `stored` (file texts by configured path, from the database) no file is read.
    """
    name = str(cfg.get("name") or "inline")
    path, rows_cfg = cfg.get("path"), cfg.get("rows")
    if (path is None) == (rows_cfg is None):
        raise UserError(f"{where}: dataset needs exactly one of 'path' or 'rows'; set one of them")
    text: str | None = None
    if path is not None:
        file = (root / path) if not Path(path).is_absolute() else Path(path)
        if stored is not None:
            if path not in stored:
                raise UserError(f"{where}: dataset file {path} is not stored in the database")
            text = stored[path]
        elif not file.is_file():
            raise UserError(f"{where}: dataset.path: file {file} does not exist; fix the path "
                            "(relative paths resolve against the project directory)")
        else:
            text = read_text(file, _label(file))
        raw = _parse(text, file, where)
    else:
        raw = list(rows_cfg or [])
        for i, r in enumerate(raw):
            if not isinstance(r, dict):
                raise UserError(f"{where}: dataset.rows[{i}] is not a mapping; write each row "
                                "as key: value pairs")
    limit = cfg.get("limit")
    if limit is not None:
        raw = raw[: int(limit)]
    rows = make_rows(raw, cfg.get("id_field"), where)
    return DatasetSpec(name=name, path=path, rows=tuple(rows)), text


def _label(file: Path) -> str:
    """The file as errors name it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(file) if file.resolve().is_relative_to(Path.cwd()) else str(file)
    except (OSError, ValueError):
        return str(file)


def read_text(file: Path, label: str) -> str:
    """A UTF-8 text file, exactly (no newline translation); a user error if it is not."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UserError(f"{label}: cannot read the file ({exc.strerror}); check its "
                        "permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UserError(f"{label}: not UTF-8 but UTF-16 (it starts with a UTF-16 byte "
                            "order mark); save it as UTF-8") from None
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{label}: not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
                        "save it as UTF-8, e.g. iconv -f latin1 -t utf-8") from None


def _parse(text: str, file: Path, where: str) -> list[dict[str, Any]]:
    text = text.removeprefix("\ufeff")
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return list(_jsonl(text, _label(file)))
    if suffix == ".csv":
        return list(_csv(text, _label(file)))
    raise UserError(f"{where}: dataset.path: {file.name} has an unknown format; use a "
                    ".jsonl or .csv file")


def _jsonl(text: str, label: str) -> Iterator[dict[str, Any]]:
    # Only \n ends a line: U+2028, U+2029, \x85 and friends are legal inside JSON strings.
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{label}:{n}: invalid JSON ({exc.msg} at column {exc.colno}); "
                            "each line must be one JSON object") from None
        if _has_lone_surrogate(line, value):
            raise UserError(f"{label}:{n}: a \\ud800-\\udfff escape stands alone (half of "
                            "a character pair), so the text is not valid Unicode; fix the "
                            "escape or remove it")
        if not isinstance(value, dict):
            kind = _JSON_KINDS.get(type(value), "not an object")
            raise UserError(f"{label}:{n}: the line is {kind}, not a JSON object; each line "
                            'must be one object such as {"id": "q1", "question": "..."}')
        yield value


def _has_lone_surrogate(line: str, value: Any) -> bool:
    """Whether JSON escapes decoded into a lone surrogate (no database or hash takes it)."""
    if "\\u" not in line.lower():
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _records(text: str, label: str) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the physical line each starts on; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UserError(f"{label}:{start}: malformed CSV ({exc}); a field with a comma, "
                            'quote or line break must be quoted, with "" for a quote inside '
                            "it, and every quote closed") from None
        blank = not fields or (len(fields) == 1 and not fields[0].strip())
        if start == 1 or not blank:  # the header is line 1, even when it is blank
            yield start, fields
        start = reader.line_num + 1


def _csv(text: str, label: str) -> Iterator[dict[str, Any]]:
    records = _records(text, label)
    first = next(records, None)
    if first is None:
        raise UserError(f"{label}: the file is empty; the first line must name the columns")
    _, header = first
    if not any(name.strip() for name in header):
        raise UserError(f"{label}:1: the header is empty; the first line must name the "
                        "columns, e.g. id,question,expected")
    for i, name in enumerate(header, 1):
        if not name.strip():
            raise UserError(f"{label}:1: column {i} has no name; name every column in the "
                            "header (a trailing comma makes an empty one)")
        if header.index(name) != i - 1:
            raise UserError(f"{label}:1: column {name!r} appears twice in the header; rename "
                            "one of them")
    for line, fields in records:
        if len(fields) < len(header):
            missing = ", ".join(header[len(fields):])
            raise UserError(f"{label}:{line}: row has {len(fields)} fields but the header has "
                            f"{len(header)} columns, missing {missing}; add the missing values "
                            '(an empty value is written ,, or "")')
        if len(fields) > len(header):
            raise UserError(f"{label}:{line}: row has {len(fields)} fields but the header has "
                            f"{len(header)} columns ({', '.join(header)}); quote values that "
                            "contain commas, or add the column to the header")
        yield dict(zip(header, fields, strict=True))


def make_rows(raw: list[dict[str, Any]], id_field: str | None, where: str) -> list[Row]:
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for i, data in enumerate(raw):
        field_name = id_field or ("id" if "id" in data else None)
        if field_name is not None:
            if field_name not in data:
                raise UserError(f"{where}: dataset row {i} has no '{field_name}' field; add it or "
                                "change dataset.id_field")
            base = str(data[field_name])
        else:
            base = hash_value(data)[:12]
        count = seen.get(base, 0) + 1
        seen[base] = count
        if count > 1 and field_name is not None:
            raise UserError(f"{where}: dataset id '{base}' appears twice; ids in "
                            f"'{field_name}' must be unique")
        rows.append(Row(id=base if count == 1 else f"{base}-{count}", index=i, data=dict(data)))
    return rows
