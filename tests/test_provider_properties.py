"""Whatever a server sends, every parser gives a storable ProviderResponse or a ProviderError.

The runner records a ProviderError as the trial's error; any other exception escaping a
parser crashes the run, and a value the results table cannot hold loses it at commit. So
every parser (each provider's parse_response and parse_choices, each stream parser's feed
and result) and every classify is fed arbitrary JSON values, JSON shaped like the real
replies with fuzzed leaves, and arbitrary bytes and text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from promptlab.config.schema import HttpConfig
from promptlab.errors import ProviderError
from promptlab.providers import ProviderResponse, get_provider
from promptlab.providers.anthropic import AnthropicProvider
from promptlab.providers.openai import OpenAIProvider
from promptlab.spec import ModelSpec

# The results columns: String(500), String(50), String(200), INTEGER.
MODEL_CHARS, FINISH_REASON_CHARS, FINGERPRINT_CHARS = 500, 50, 200
INT32_MAX = 2**31 - 1
KINDS = {"rate_limit", "transient", "auth", "fatal"}

BOUNDED = settings(max_examples=300, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])


def documented_http_config() -> dict[str, Any]:
    yaml = OmegaConf.load(REPO / "experiments/models/gemini-flash.yaml")
    config = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(HttpConfig),
                                                    yaml["http"]))
    assert isinstance(config, dict)
    return {str(k): v for k, v in config.items()}


CHAT = ModelSpec("oa", "openai", "gpt-4o-mini", None)
COMPLETIONS = ModelSpec("oc", "openai", "gpt-3.5-turbo-instruct", None, endpoint="completions")
ANTHROPIC = ModelSpec("an", "anthropic", "claude-3-5-haiku-latest", None)
GEMINI = ModelSpec("gem", "http", "gemini-2.0-flash", "https://example.invalid",
                   http=documented_http_config())
OPENAI = OpenAIProvider()
CLAUDE = AnthropicProvider()
HTTP = get_provider("http")

# -- what a server could send ------------------------------------------------------------

# Every code point, lone surrogates included (JSON's "\ud800" escapes decode to them);
# this alphabet also spares the cold start of the default one's Unicode tables.
any_text = st.text(st.characters(exclude_categories=()), max_size=20) | st.sampled_from(
    ["", "stop", "text", "5", " 7 ", "x" * 600, "é中😀", "a\ud800b", "line\nbreak\u2028"])
leaves = (st.none() | st.booleans() | any_text
          | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
          | st.sampled_from([0, INT32_MAX, INT32_MAX + 1, -1, 2**63])
          | st.floats() | st.sampled_from([5.0, 1e300, -0.0, 0.5]))
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(any_text, inner, max_size=4), max_leaves=12)


def fuzz(real: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the real shape, sometimes anything at all."""
    return real | json_values


counts = fuzz(st.integers(0, 10**6) | st.integers(0, 10**6).map(str)
              | st.integers(0, 10**6).map(float) | st.sampled_from(["", "5.5", "-3", "1e3"]))
content_parts = st.lists(fuzz(st.fixed_dictionaries(
    {"type": fuzz(st.sampled_from(["text", "image_url", "refusal", "tool_use"])),
     "text": fuzz(any_text)})), max_size=4)
content = fuzz(any_text | content_parts)

openai_choice = st.fixed_dictionaries(
    {"index": fuzz(st.integers(0, 3))},
    optional={"message": fuzz(st.fixed_dictionaries(
                  {"role": st.just("assistant")}, optional={"content": content})),
              "text": content, "finish_reason": fuzz(st.sampled_from(["stop", "length"]))})
openai_reply = st.fixed_dictionaries(
    {"choices": fuzz(st.lists(fuzz(openai_choice), max_size=3))},
    optional={"usage": fuzz(st.fixed_dictionaries({}, optional={
                  "prompt_tokens": counts, "completion_tokens": counts})),
              "model": fuzz(any_text), "system_fingerprint": fuzz(any_text),
              "error": json_values})
anthropic_reply = st.fixed_dictionaries(
    {"type": fuzz(st.sampled_from(["message", "error"]))},
    optional={"content": fuzz(content_parts), "stop_reason": fuzz(any_text),
              "model": fuzz(any_text), "error": json_values,
              "usage": fuzz(st.fixed_dictionaries({}, optional={
                  "input_tokens": counts, "output_tokens": counts}))})
gemini_reply = st.fixed_dictionaries(
    {"candidates": fuzz(st.lists(fuzz(st.fixed_dictionaries(
        {"content": fuzz(st.fixed_dictionaries({"parts": fuzz(st.lists(fuzz(
            st.fixed_dictionaries({"text": fuzz(any_text)})), max_size=3))}))},
        optional={"finishReason": fuzz(any_text)})), max_size=2))},
    optional={"usageMetadata": fuzz(st.fixed_dictionaries({}, optional={
                  "promptTokenCount": counts, "candidatesTokenCount": counts})),
              "modelVersion": fuzz(any_text)})

nested = st.integers(1, 5000).map(lambda n: "[" * n + "]" * n) | st.integers(1, 5000).map(
    lambda n: '{"a":' * n + "1" + "}" * n)
bodies = (st.binary(max_size=300) | nested.map(str.encode)
          | json_values.map(lambda v: json.dumps(v).encode())
          | st.tuples(openai_reply | anthropic_reply | gemini_reply, st.integers(0, 400)).map(
              lambda t: json.dumps(t[0]).encode()[:t[1]])  # cut short, as a dropped link does
          | json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode(
              "utf-8", "surrogatepass")))

openai_chunk = st.fixed_dictionaries({}, optional={
    "choices": fuzz(st.lists(fuzz(st.fixed_dictionaries({}, optional={
        "delta": fuzz(st.fixed_dictionaries({}, optional={"content": content})),
        "text": content, "finish_reason": fuzz(st.sampled_from(["stop", "length"]))})),
        max_size=2)),
    "usage": fuzz(st.fixed_dictionaries({}, optional={"prompt_tokens": counts,
                                                      "completion_tokens": counts})),
    "model": fuzz(any_text), "system_fingerprint": fuzz(any_text), "error": json_values})
anthropic_event = st.fixed_dictionaries(
    {"type": fuzz(st.sampled_from(["message_start", "content_block_delta", "message_delta",
                                   "message_stop", "error", "ping"]))},
    optional={"message": fuzz(st.fixed_dictionaries({}, optional={
                  "model": fuzz(any_text), "usage": fuzz(st.fixed_dictionaries({}, optional={
                      "input_tokens": counts, "output_tokens": counts}))})),
              "delta": fuzz(st.fixed_dictionaries({}, optional={
                  "type": fuzz(st.just("text_delta")), "text": fuzz(any_text),
                  "stop_reason": fuzz(any_text)})),
              "usage": fuzz(st.fixed_dictionaries({}, optional={
                  "input_tokens": counts, "output_tokens": counts})),
              "error": json_values})


def data_lines(events: st.SearchStrategy[Any], last: str) -> st.SearchStrategy[list[str]]:
    """A stream's data payloads: mostly events, some garbage, usually properly ended."""
    line = events.map(json.dumps) | any_text | nested | json_values.map(json.dumps)
    return st.tuples(st.lists(line, max_size=8), st.booleans()).map(
        lambda t: t[0] + [last] if t[1] else t[0])


# -- what must come back -------------------------------------------------------------------


def assert_storable(r: ProviderResponse) -> None:
    assert type(r) is ProviderResponse
    assert type(r.text) is str
    r.text.encode("utf-8")
    for label, limit in ((r.finish_reason, FINISH_REASON_CHARS), (r.model, MODEL_CHARS),
                         (r.fingerprint, FINGERPRINT_CHARS)):
        assert label is None or (type(label) is str and len(label) <= limit)
        if label is not None:
            label.encode("utf-8")
    for count in (r.input_tokens, r.output_tokens):
        assert count is None or (type(count) is int and 0 <= count <= INT32_MAX)


def assert_good_error(exc: ProviderError) -> None:
    message = str(exc)
    assert len(message.splitlines()) <= 1 and len(message) < 1000
    message.encode("utf-8")
    assert exc.kind in KINDS


def parse_or_error(parse: Callable[[], ProviderResponse]) -> None:
    try:
        r = parse()
    except ProviderError as exc:
        assert_good_error(exc)
    else:
        assert_storable(r)


def choices_or_error(body: bytes) -> None:
    try:
        rs = OPENAI.parse_choices(CHAT, 200, body)
    except ProviderError as exc:
        assert_good_error(exc)
    else:
        assert len(rs) >= 1
        for r in rs:
            assert_storable(r)


def all_parsers(body: bytes) -> None:
    for provider, model in ((OPENAI, CHAT), (OPENAI, COMPLETIONS), (CLAUDE, ANTHROPIC),
                            (HTTP, GEMINI)):
        parse_or_error(lambda: provider.parse_response(model, 200, body))  # noqa: B023
    choices_or_error(body)


def stream_or_error(parser: Any, lines: list[str]) -> None:
    try:
        for line in lines:
            assert type(parser.feed(line)) is str
        r = parser.result()
    except ProviderError as exc:
        assert_good_error(exc)
    else:
        assert_storable(r)


# -- the properties ----------------------------------------------------------------------


@BOUNDED
@given(json_values)
def test_any_json_value_parses_or_is_a_provider_error(value: Any) -> None:
    all_parsers(json.dumps(value).encode())


@BOUNDED
@given(bodies)
def test_any_bytes_parse_or_are_a_provider_error(body: bytes) -> None:
    all_parsers(body)


@BOUNDED
@given(openai_reply)
def test_openai_shaped_replies_parse_or_are_a_provider_error(reply: dict[str, Any]) -> None:
    all_parsers(json.dumps(reply).encode())


@BOUNDED
@given(anthropic_reply)
def test_anthropic_shaped_replies_parse_or_are_a_provider_error(reply: dict[str, Any]) -> None:
    all_parsers(json.dumps(reply).encode())


@BOUNDED
@given(gemini_reply)
def test_http_shaped_replies_parse_or_are_a_provider_error(reply: dict[str, Any]) -> None:
    all_parsers(json.dumps(reply).encode())


@BOUNDED
@given(data_lines(openai_chunk, "[DONE]"))
def test_openai_streams_assemble_or_are_a_provider_error(lines: list[str]) -> None:
    stream_or_error(OPENAI.stream_parser(), lines)
    stream_or_error(CLAUDE.stream_parser(), lines)


@BOUNDED
@given(data_lines(anthropic_event, '{"type": "message_stop"}'))
def test_anthropic_streams_assemble_or_are_a_provider_error(lines: list[str]) -> None:
    stream_or_error(CLAUDE.stream_parser(), lines)
    stream_or_error(OPENAI.stream_parser(), lines)


@BOUNDED
@given(st.integers(100, 599), bodies)
def test_classify_always_answers_a_kind(status: int, body: bytes) -> None:
    for provider, model in ((OPENAI, CHAT), (OPENAI, COMPLETIONS), (CLAUDE, ANTHROPIC),
                            (HTTP, GEMINI)):
        assert provider.classify(model, status, body) in KINDS
