"""Whatever a server sends, a ProviderResponse holds values the results table can store."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from promptlab.errors import ProviderError
from promptlab.providers.normalize import (
    FINGERPRINT_CHARS,
    FINISH_REASON_CHARS,
    INT32_MAX,
    MODEL_CHARS,
    as_label,
    as_text,
    as_token_count,
    describe,
    load_json,
    make_response,
)


@pytest.mark.parametrize(("value", "count"), [
    (0, 0), (5, 5), (INT32_MAX, INT32_MAX), (5.0, 5), (0.0, 0), ("5", 5), (" 12 ", 12),
    ("007", 7), (None, None), (True, None), (False, None), (-1, None), (-1.0, None),
    (INT32_MAX + 1, None), (2**64, None), (1e300, None), (5.5, None), (math.nan, None),
    (math.inf, None), (-math.inf, None), ("5.5", None), ("-5", None), ("", None),
    ("five", None), ("1" * 400, None), ("\u0663", None), ([5], None), ({"n": 5}, None),
])
def test_token_counts_are_int32_or_none(value: Any, count: int | None) -> None:
    result = as_token_count(value)
    assert result == count
    assert result is None or type(result) is int


@pytest.mark.parametrize(("value", "text"), [
    ("plain", "plain"), (None, ""), ("", ""),
    ([{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}], "Hello"),
    ([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}},
      {"type": "text", "text": "b"}], "ab"),
    (["a", "b"], "ab"),
    ([{"text": "gemini-style part"}], "gemini-style part"),
    ([{"type": "text", "text": {"value": "assistants-style", "annotations": []}}],
     "assistants-style"),
    ([], ""), ([{"type": "text", "text": ""}], ""),
    ([{"type": "tool_use", "name": "f"}], '[{"type": "tool_use", "name": "f"}]'),
    ({"answer": 42}, '{"answer": 42}'), ({"é": "ü"}, '{"é": "ü"}'),
    (5, "5"), (1.5, "1.5"), (True, "true"), ([1, 2], "[1, 2]"),
    ("lone \ud800 surrogate", "lone \ufffd surrogate"),
])
def test_text_is_always_a_string(value: Any, text: str) -> None:
    assert as_text(value) == text


def test_content_parts_with_a_lone_surrogate_become_storable_text() -> None:
    text = as_text([{"type": "text", "text": "a\udfff"}])
    assert text == "a\ufffd"
    text.encode("utf-8")


@pytest.mark.parametrize(("value", "limit", "label"), [
    ("stop", 50, "stop"), (None, 50, None), ("", 50, ""), ("x" * 60, 50, "x" * 39 + "…[60 chars]"),
    (3, 50, "3"), (True, 50, "true"), ({"a": 1}, 50, '{"a": 1}'), ([1], 50, "[1]"),
    ("bad \udc80", 50, "bad \ufffd"),
])
def test_labels_are_bounded_strings_or_none(value: Any, limit: int, label: str | None) -> None:
    assert as_label(value, limit) == label


def test_make_response_bounds_every_field_to_its_column() -> None:
    r = make_response([{"type": "text", "text": "x"}], "f" * 99, "5", 7.0, "m" * 999,
                      {"fp": "y" * 999})
    assert r.text == "x"
    assert r.finish_reason == "f" * (FINISH_REASON_CHARS - 11) + "…[99 chars]"
    assert (r.input_tokens, r.output_tokens) == (5, 7)
    assert r.model == "m" * (MODEL_CHARS - 12) + "…[999 chars]"
    assert r.fingerprint is not None and len(r.fingerprint) == FINGERPRINT_CHARS
    assert r.fingerprint.startswith('{"fp": "yyy')


@pytest.mark.parametrize(("body", "message"), [
    (b"", "is not JSON"), (b"<html>502 Bad Gateway</html>", "is not JSON"),
    (b'{"a": 1', "is not JSON"), (b"\xff\xfe\xfa", "is not"), (b"[" * 100_000, "nested"),
    ("[" * 100_000, "nested"), (b"1" * 5000, "is not JSON"),
])
def test_load_json_turns_every_failure_into_a_one_line_provider_error(body: bytes | str,
                                                                      message: str) -> None:
    with pytest.raises(ProviderError) as info:
        load_json(body, "reply")
    assert message in str(info.value)
    assert str(info.value).startswith("reply ")
    assert len(str(info.value).splitlines()) == 1
    assert len(str(info.value)) < 300
    assert info.value.kind == "transient"


def test_load_json_shows_the_start_of_a_body_that_is_not_json() -> None:
    with pytest.raises(ProviderError, match="502 Bad Gateway"):
        load_json(b"<html>502 Bad Gateway</html>\n" + b"x" * 10_000, "reply")


def test_load_json_reads_valid_json() -> None:
    assert load_json(b'{"a": [1, null]}', "reply") == {"a": [1, None]}
    assert load_json('"\\ud800"', "reply") == "\ud800"  # cleaned later, by as_text


@pytest.mark.parametrize("value", [
    "line1\nline2\u2028line3", {"k": "v" * 10_000}, None, [[[[]]]], math.nan,
])
def test_describe_is_one_short_line(value: Any) -> None:
    text = describe(value)
    assert len(text.splitlines()) == 1 and len(text) <= 120


def test_make_response_keeps_only_tool_calls_from_a_list_or_tuple() -> None:
    from promptlab.providers.normalize import make_tool_call

    call = make_tool_call("f", '{"a": 1}', "c1")
    assert make_response("t", None, None, None, None, tool_calls=[call, "junk"]
                         ).tool_calls == (call,)
    assert make_response("t", None, None, None, None, tool_calls=(call,)).tool_calls == (call,)
    for nothing in ([], (), None, 0, "", {"f": call}, "abc"):
        assert make_response("t", None, None, None, None, tool_calls=nothing).tool_calls == ()



@pytest.mark.parametrize("body", [
    b'{"a": 1}', b'{"a": "\xc3\xa9\xe2\x9c\x93"}', b'{"s": "\xed\xa0\x80"}', b"{", b"{}",
    b'{"a": 1} x', b'{"a": 1}\n\n', b'{"a": \xff}', b'\xef\xbb\xbf{"a": 1}',
    '{"a": 1}'.encode("utf-16-le"), '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32"),
    '{"a": 1}'.encode("utf-32-le"), b' {"a": 1}', b"[1]", b'"x"', b"{" * 100_000,
    '{"a": 1}', "{", '{"a": 1} x', '\ufeff{"a": 1}', '{"s": "\ud800"}', "{" * 100_000,
])
def test_load_json_reads_every_body_as_json_loads_does(body: bytes | str) -> None:
    try:
        expected: Any = json.loads(body)
    except UnicodeDecodeError as exc:
        expected = f"not valid {exc.encoding}"
    except ValueError as exc:
        expected = f"({exc.msg} at char {exc.pos})" if isinstance(
            exc, json.JSONDecodeError) else str(exc)[:80]
    except RecursionError:
        expected = "nested too deeply"
    try:
        got: Any = load_json(body, "reply")
    except ProviderError as exc:
        assert isinstance(expected, str) and expected in str(exc)
    else:
        assert got == expected
