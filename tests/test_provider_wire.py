"""The small wire helpers every provider builds requests with: `dumps` and `api_url`,
which keep per-process state (one JSON encoder; a cache of URLs) for speed."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from promptlab.providers.base import api_url, dumps


@pytest.mark.parametrize("value", [
    {"model": "m", "messages": [{"role": "user", "content": "héllo ✓ 日本"}], "n": 1},
    {"a": [1, 2.5, None, True, {"b": "c"}], "nan": math.nan, "inf": -math.inf},
    "text", 3, [], {},
])
def test_dumps_is_compact_utf8_json(value: Any) -> None:
    assert dumps(value) == json.dumps(value, separators=(",", ":"),
                                      ensure_ascii=False).encode("utf-8")


def test_dumps_escapes_a_lone_surrogate_and_refuses_a_cycle() -> None:
    assert dumps({"t": "a\ud800b"}) == b'{"t":"a\\ud800b"}'
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        dumps(loop)
    assert dumps([1]) == b"[1]"  # the shared encoder is still fine after a failure


@pytest.mark.parametrize(("base", "path", "url"), [
    ("http://h:1/v1", "/chat/completions", "http://h:1/v1/chat/completions"),
    ("http://h:1/v1/", "/messages", "http://h:1/v1/messages"),
    ("https://h/d?api-version=1", "/x?alt=sse", "https://h/d/x?api-version=1&alt=sse"),
    ("https://h/d#frag", "/x", "https://h/d/x"),
])
def test_api_url_joins_paths_and_queries_the_same_every_time(base: str, path: str,
                                                            url: str) -> None:
    assert api_url(base, path) == url
    assert api_url(base, path) == url
