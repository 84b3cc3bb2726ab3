"""Reading dataset files: records as the csv and JSON formats define them, errors at file:line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlab.dataset import load_dataset
from promptlab.errors import UserError


def load(tmp_path: Path, name: str, content: str | bytes) -> list[dict[str, object]]:
    (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    spec, _ = load_dataset({"path": name}, tmp_path, "experiments/dataset/d.yaml")
    return [dict(r.data) for r in spec.rows]


def error(tmp_path: Path, name: str, content: str | bytes) -> str:
    with pytest.raises(UserError) as info:
        load(tmp_path, name, content)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_quoted_newline_stays_inside_its_csv_field(tmp_path: Path) -> None:
    rows = load(tmp_path, "d.csv", 'q,a\n"two\nlines","x, y"\r\n"crlf\r\ninside",z\n')
    assert rows == [{"q": "two\nlines", "a": "x, y"}, {"q": "crlf\r\ninside", "a": "z"}]


def test_jsonl_strings_may_hold_line_and_paragraph_separators(tmp_path: Path) -> None:
    text = '{"q": "a\u2028b"}\n{"q": "c\u2029d"}\r\n'
    assert load(tmp_path, "d.jsonl", text) == [{"q": "a\u2028b"}, {"q": "c\u2029d"}]


def test_blank_jsonl_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    assert load(tmp_path, "d.jsonl", '\n{"a": 1}\n  \n\n{"a": 2}\n\n') == [{"a": 1}, {"a": 2}]
    assert "d.jsonl:4: " in error(tmp_path, "d.jsonl", '\n{"a": 1}\n\n{"a": \n')


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    assert load(tmp_path, "d.csv", "\ufeffid,q\n1,x\n") == [{"id": "1", "q": "x"}]
    assert load(tmp_path, "d.jsonl", '\ufeff{"id": "1"}\n') == [{"id": "1"}]


def test_the_stored_text_is_the_file_exactly(tmp_path: Path) -> None:
    content = '\ufeffid,q\r\n1,"a\r\nb"\r\n'
    (tmp_path / "d.csv").write_bytes(content.encode())
    spec, text = load_dataset({"path": "d.csv"}, tmp_path, "w")
    assert text == content
    again, _ = load_dataset({"path": "d.csv"}, tmp_path, "w", stored={"d.csv": content})
    assert again == spec


def test_a_short_csv_row_names_its_line_and_the_missing_columns(tmp_path: Path) -> None:
    message = error(tmp_path, "d.csv", 'id,q,a,b\n1,"x\ny",2,3\n2,z\n')
    assert "d.csv:4: " in message
    assert "missing b, a" not in message and "missing a, b" in message


def test_a_long_csv_row_is_an_error(tmp_path: Path) -> None:
    assert "d.csv:2: row has 3 fields" in error(tmp_path, "d.csv", "id,q\n1,x,y\n")


@pytest.mark.parametrize(("content", "expected"), [
    ("", "empty"),
    ("\n1,2\n", "d.csv:1: the header is empty"),
    ("a,b,\n1,2,3\n", "column 3 has no name"),
    ("a,b,a\n1,2,3\n", "'a' appears twice"),
    ('a,b\n1,"2\n', "d.csv:2: "),
])
def test_csv_structure_errors(tmp_path: Path, content: str, expected: str) -> None:
    assert expected in error(tmp_path, "d.csv", content)


@pytest.mark.parametrize(("line", "kind"), [
    ("[1]", "a JSON array"), ('"s"', "a JSON string"), ("3", "a JSON number"),
    ("true", "JSON true or false"), ("null", "JSON null"),
])
def test_a_jsonl_line_must_be_an_object(tmp_path: Path, line: str, kind: str) -> None:
    message = error(tmp_path, "d.jsonl", '{"a": 1}\n' + line + "\n")
    assert f"d.jsonl:2: the line is {kind}, not a JSON object" in message


def test_non_utf8_files_name_the_encoding_and_line(tmp_path: Path) -> None:
    assert "d.csv: not UTF-8" in error(tmp_path, "d.csv", b"a\nx\n\xe9\n")
    assert "line 3" in error(tmp_path, "d.csv", b"a\nx\n\xe9\n")
    assert "UTF-16" in error(tmp_path, "d.jsonl", '{"a": 1}\n'.encode("utf-16"))


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=5))
def test_any_rows_the_csv_module_writes_are_read_back(tmp_path_factory: pytest.TempPathFactory,
                                                      rows: list[tuple[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(["a", "b"])
    writer.writerows(rows)
    tmp = tmp_path_factory.mktemp("csv")
    assert load(tmp, "d.csv", buffer.getvalue()) == [{"a": a, "b": b} for a, b in rows]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(texts, texts, max_size=3), min_size=1, max_size=5))
def test_any_objects_json_writes_one_per_line_are_read_back(
        tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, str]]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    tmp = tmp_path_factory.mktemp("jsonl")
    assert load(tmp, "d.jsonl", text) == rows
