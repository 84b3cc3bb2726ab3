"""A different request is a cache miss: the fingerprint names what is sent beyond the
base URL (the API, a generic HTTP API's config, the headers that are not secret). Found
by an adversarial review: a completions model was served a chat model's answers, and an
edited http body template the old body's answers."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from helpers import run_with
from test_cache_entries import downgraded

from promptlab.cache import fingerprint
from promptlab.spec import ModelSpec
from promptlab.store import Store

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = ModelSpec(alias="a", provider="openai", model="gpt-x", base_url="http://h/v1")


def by_api(request: httpx.Request) -> httpx.Response:
    """A server with two APIs that answer differently."""
    if request.url.path.endswith("/chat/completions"):
        return httpx.Response(200, json={"model": "m", "choices": [
            {"message": {"role": "assistant", "content": "CHAT-API"}, "finish_reason": "stop"}]})
    return httpx.Response(200, json={"model": "m", "choices": [
        {"text": "COMPLETIONS-API", "finish_reason": "stop"}]})


ONE = ("models=[oa]", "prompts=[plain]", "grid.params.temperature=[0]", "grid.params.top_p=[1]")


def test_a_completions_model_is_not_served_a_chat_models_answers(project: Path) -> None:
    first, _ = run_with(project, by_api, *ONE, run_id="chat")
    assert (first.ok, first.cached) == (3, 0)
    second, store = run_with(project, by_api, *ONE, "models.oa.endpoint=completions",
                             run_id="completions")
    assert (second.ok, second.cached) == (3, 0)
    with sqlite3.connect(project / "results.db") as conn:
        outputs = conn.execute("select distinct output from results where run_id = "
                               "'completions'").fetchall()
    assert outputs == [("COMPLETIONS-API",)]
    store.close()
    third, _ = run_with(project, by_api, *ONE, "models.oa.endpoint=completions", run_id="again")
    assert third.cached == 3  # its own answers still serve it


def test_a_plain_chat_models_fingerprint_is_what_it_was() -> None:
    """Answers stored before the wire was in the fingerprint still serve a chat model."""
    assert fingerprint(CHAT, MESSAGES, {"temperature": 0.0}, 0) == (
        "8201283c0ce6a750728cae9ed8bbfb25df9a3dc1a7ed483a3405a64b64d338d5")
    keyed = ModelSpec(alias="a", provider="anthropic", model="claude", base_url=None,
                      headers=(("x-api-key", "s"),), secret_headers=("x-api-key",))
    assert fingerprint(keyed, MESSAGES, {"max_tokens": 5}, 1) == (
        "aef668f525156b24d4e8f20ddee4efe7532c7f8b546f8873ee2438b5719a7864")


@pytest.mark.parametrize("change", [
    {"endpoint": "completions"},
    {"endpoint": "responses"},
    {"headers": (("anthropic-beta", "tools-2024"),)},
    {"provider": "http", "http": {"body": '{"q": {{ prompt | tojson }}}', "output_path": "a"}},
])
def test_what_shapes_the_request_changes_the_fingerprint(change: dict[str, object]) -> None:
    base = fingerprint(CHAT, MESSAGES, {}, 0)
    assert fingerprint(dataclasses.replace(CHAT, **change), MESSAGES, {}, 0) != base  # type: ignore[arg-type]


def test_an_edited_http_config_or_header_changes_the_fingerprint_a_secret_does_not() -> None:
    http = dataclasses.replace(CHAT, provider="http",
                               http={"body": '{"q": {{ ("A " ~ prompt) | tojson }}}',
                                     "output_path": "a"})
    edited = dataclasses.replace(http, http={**(http.http or {}),
                                             "body": '{"q": {{ ("B " ~ prompt) | tojson }}}'})
    reread = dataclasses.replace(http, http={**(http.http or {}), "output_path": "b"})
    keys = {fingerprint(m, MESSAGES, {}, 0) for m in (http, edited, reread)}
    assert len(keys) == 3
    tagged = dataclasses.replace(CHAT, headers=(("X-Note", "one"), ("Authorization", "k1")),
                                 secret_headers=("authorization",))
    retagged = dataclasses.replace(tagged, headers=(("X-Note", "two"), ("Authorization", "k1")))
    rekeyed = dataclasses.replace(tagged, headers=(("X-Note", "one"), ("Authorization", "k2")))
    assert fingerprint(tagged, MESSAGES, {}, 0) != fingerprint(retagged, MESSAGES, {}, 0)
    assert fingerprint(tagged, MESSAGES, {}, 0) == fingerprint(rekeyed, MESSAGES, {}, 0)


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "api-key"])
def test_a_key_in_a_header_always_secret_is_not_in_the_fingerprint(header: str) -> None:
    """Not listed in secret_headers, still a secret (the README's list): a chat model
    sending it keeps the fingerprint it always had, whatever the key."""
    keyed = [fingerprint(dataclasses.replace(CHAT, headers=((header, key),)), MESSAGES,
                         {"temperature": 0.0}, 0) for key in ("Bearer sk-ONE", "Bearer sk-TWO")]
    assert keyed == [fingerprint(CHAT, MESSAGES, {"temperature": 0.0}, 0)] * 2


def test_a_key_in_an_http_paths_query_is_not_in_the_fingerprint() -> None:
    def http(path: str) -> ModelSpec:
        return dataclasses.replace(CHAT, provider="http", secret_params=("sig",),
                                   http={"body": "{}", "output_path": "a", "path": path})

    assert (fingerprint(http("/gen?key=ONE&sig=A&v=1"), MESSAGES, {}, 0)
            == fingerprint(http("/gen?key=TWO&sig=B&v=1"), MESSAGES, {}, 0)
            != fingerprint(http("/gen?key=ONE&sig=A&v=2"), MESSAGES, {}, 0))


def test_cache_why_names_the_wire_when_no_stored_field_differs(project: Path) -> None:
    from promptlab.cache import explain

    run_with(project, by_api, *ONE, run_id="chat")
    _, store = run_with(project, by_api, *ONE, "models.oa.endpoint=completions",
                        run_id="completions")
    try:
        lines = explain(store, "completions", "0")
    finally:
        store.close()
    assert "cache miss:" in lines
    assert any("the model's API, http config or headers" in line for line in lines), lines


def test_the_upgrade_drops_entries_a_chat_model_would_have_been_served(tmp_path: Path) -> None:
    """Before 0011 a completions model's answers went into the index under a chat model's
    fingerprint; the migration drops them (a miss, sent again), and keeps the rest."""
    from test_cache_entries import _record, _run

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store.open(url)
    for run_id, endpoint in (("chat", "chat"), ("completions", "completions")):
        _run(store, run_id)
        store.write([_record(run_id, 0, model="x", row="r", cache_key=f"k-{run_id}")])
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE runs SET config_json = ? WHERE id = ?",
                (json.dumps({"models": {"x": {"endpoint": endpoint, "http": None,
                                              "headers": {}}}}), run_id))
    store.close()
    downgraded(url, "0010")
    upgraded = Store.open(url)
    try:
        assert upgraded.cache_sources(["k-chat", "k-completions"]) == {"k-chat": ("chat", 0)}
    finally:
        upgraded.close()


def test_a_resumed_pre_0011_run_does_not_file_its_answers_back_under_the_old_fingerprints(
        tmp_path: Path) -> None:
    """The review's case: the upgrade dropped the entries, but a resume ended the run
    again, and the fill at its end put its results back under the trials' old keys."""
    from test_cache_entries import _record
    from test_cache_pending import _entries, _sent

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store.open(url)
    _sent(store, "old")
    store.write([_record("old", 0, model="x", row="r", cache_key="k-shared"),
                 _record("old", 1, model="x", row="s", cache_key="k-old-1", status="error")])
    assert store.release("old", "tok", "interrupted")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE runs SET config_json = ? WHERE id = 'old'", (json.dumps(
            {"models": {"x": {"endpoint": "completions", "headers": {}}}}),))
    assert _entries(store) == {("k-shared", "old", 0)}
    store.close()
    downgraded(url, "0010")
    upgraded = Store.open(url)
    try:
        assert _entries(upgraded) == set()
        token = upgraded.claim("old")  # a resume: the trial not done is answered anew
        again = _record("old", 1, model="x", row="s", cache_key="k-today")
        again.trial_exists = True
        again.attempts[0]["number"] = 2
        upgraded.write([again])
        assert upgraded.release("old", token, "completed")
        assert _entries(upgraded) == {("k-today", "old", 1)}
        assert upgraded.cache_sources(["k-shared", "k-old-1"]) == {}
    finally:
        upgraded.close()
