"""Datasets: inline rows, JSONL and CSV files, each row with a stable id.

A row's id is the value of the dataset's ``id_field`` when set (or of an ``id`` column when
present), otherwise the first 12 hex digits of the sha256 of the row's canonical JSON, so
an id survives reordering the file. Identical rows get ``-2``, ``-3``, ... suffixes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from promptlab.canonical import hash_value
from promptlab.errors import UserError
from promptlab.spec import DatasetSpec, Row

__all__ = ["load_dataset", "make_rows"]


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
            text = file.read_text(encoding="utf-8")
        raw = list(_parse(text, file, where))
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


def _parse(text: str, file: Path, where: str) -> Iterable[dict[str, Any]]:
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{file}:{n}: invalid JSON ({exc.msg}); each line must be one "
                                "JSON object") from None
            if not isinstance(value, dict):
                raise UserError(f"{file}:{n}: line is not a JSON object; each line must be one "
                                "JSON object")
            yield value
    elif suffix == ".csv":
        yield from csv.DictReader(text.splitlines())
    else:
        raise UserError(f"{where}: dataset.path: {file.name} has an unknown format; use a "
                        ".jsonl or .csv file")


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
