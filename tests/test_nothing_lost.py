"""Nothing lost: one value the database cannot take costs its own record, never the run.

Each run here sends 300 calls through a `Session` to an `httpx.MockTransport` handler (no
socket is opened; the model's base_url is 127.0.0.1) and stores them in SQLite.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from helpers import FakeClock, prepared_for
from sqlalchemy import Engine

from promptlab import providers
from promptlab.providers import ProviderResponse, register_provider
from promptlab.providers.openai import OpenAIProvider
from promptlab.runner import RunStats
from promptlab.runner.session import NewRun, Session
from promptlab.spec import ModelSpec
from promptlab.store import Record, Store

N = 300
POISONED = 137

Handler = Callable[[httpx.Request], httpx.Response]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """One priced model, one prompt, 300 rows: 300 calls."""
    root = tmp_path / "many"
    write(root / "experiments/config.yaml", """
        defaults:
          - models: [m]
          - _self_
        name: many
        db: null
        prompts:
          q:
            messages:
              - role: user
                content: "Question {{ n }}"
        dataset:
          path: data/rows.jsonl
        run:
          concurrency: 8
          batch_size: 20
          max_attempts: 1
          progress: false
        """)
    write(root / "experiments/models/m.yaml", """
        # @package models.m
        provider: openai
        model: mock-small
        base_url: http://127.0.0.1:9/v1
        price: {input_per_mtok: 1.0, output_per_mtok: 2.0}
        """)
    write(root / "data/rows.jsonl", "".join(
        json.dumps({"id": f"r{i:03d}", "n": i}) + "\n" for i in range(N)))
    return root


def question(request: httpx.Request) -> int:
    found = re.search(r"Question (\d+)", request.content.decode())
    assert found is not None
    return int(found.group(1))


def chat(content: object = "fine", *, usage: object = None, **extra: object) -> httpx.Response:
    body = {"model": "m", "choices": [{"message": {"role": "assistant", "content": content},
                                       "finish_reason": "stop"}],
            "usage": usage if usage is not None else {"prompt_tokens": 3,
                                                       "completion_tokens": 1}}
    body.update(extra)
    return httpx.Response(200, json=body)


class Counting:
    """A handler that answers `poisoned(n)` for the questions in `bad`, `chat()` otherwise."""

    def __init__(self, bad: Sequence[int], poisoned: Callable[[int], httpx.Response]) -> None:
        self.bad = set(bad)
        self.poisoned = poisoned
        self.seen: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        n = question(request)
        self.seen.append(n)
        return self.poisoned(n) if n in self.bad else chat(f"answer {n}")


def session(project: Path, store: Store, handler: Callable[[httpx.Request], object],
            *overrides: str) -> tuple[Session, httpx.AsyncClient]:
    prepared = prepared_for(project, *overrides)
    clock = FakeClock()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return Session(store, prepared.spec, prepared.renderer, client=client, sleep=clock.sleep,
                   clock=clock), client


def run(project: Path, handler: Handler, *overrides: str) -> RunStats:
    store = Store.open(str(project / "results.db"))
    s, client = session(project, store, handler, *overrides)
    try:
        prepared = prepared_for(project, *overrides)
        return s.run(NewRun(config=prepared.loaded.config), "r1").stats
    finally:
        asyncio.run(client.aclose())
        store.close()


def resume(project: Path, handler: Handler) -> RunStats:
    store = Store.open(str(project / "results.db"))
    s, client = session(project, store, handler)
    try:
        return s.resume("r1").stats
    finally:
        asyncio.run(client.aclose())
        store.close()


def q(project: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(project / "results.db") as conn:
        return conn.execute(sql).fetchall()


def statuses(project: Path) -> dict[str, int]:
    return dict(q(project, "select status, count(*) from results group by status"))  # type: ignore[arg-type]


def test_one_answer_with_content_parts_among_300_is_stored_as_its_text(many: Path) -> None:
    handler = Counting([POISONED], lambda n: chat([{"type": "text", "text": "x"}]))
    stats = run(many, handler)
    assert len(handler.seen) == N
    assert (stats.ok, stats.errors) == (N, 0)
    assert statuses(many) == {"ok": N}
    assert q(many, "select output, cost_usd from results join trials using (run_id, idx) "
                   "where row_id = 'r137'") == [("x", pytest.approx(5e-6))]


class RawProvider(OpenAIProvider):
    """A provider as a plug-in might write one: it hands the reply's content on as it came
    (a list here), without the built-in providers' normalising."""

    name = "raw-openai"

    def parse_response(self, model: ModelSpec, status: int, body: bytes) -> ProviderResponse:
        reply = json.loads(body)
        return ProviderResponse(reply["choices"][0]["message"]["content"], "stop", 3, 1, "m")

    def parse_choices(self, model: ModelSpec, status: int,
                      body: bytes) -> list[ProviderResponse]:
        return [self.parse_response(model, status, body)]


@pytest.fixture
def raw_provider(many: Path) -> Iterator[Path]:
    register_provider(RawProvider())
    path = many / "experiments/models/m.yaml"
    path.write_text(path.read_text().replace("provider: openai", "provider: raw-openai"))
    yield many
    unregister = providers._REGISTRY
    unregister.pop("raw-openai", None)


def test_one_unstorable_value_among_300_costs_only_its_own_record(raw_provider: Path) -> None:
    many = raw_provider
    handler = Counting([POISONED], lambda n: chat([{"type": "text", "text": "x"}]))
    stats = run(many, handler)
    assert len(handler.seen) == N
    assert (stats.ok, stats.errors) == (N - 1, 1)
    assert statuses(many) == {"ok": N - 1, "error": 1}
    [(kind, error, output)] = q(many, "select error_kind, error, output from results "
                                      "where status = 'error'")
    assert kind == "unstorable"
    assert "results.output" in str(error) and "list" in str(error)
    assert json.loads(str(output)) == [{"type": "text", "text": "x"}]
    # The call's attempt is kept: its request body and the raw answer.
    [(body, raw)] = q(many, "select a.request_body, a.response_body from attempts a join "
                            "trials t using (run_id, idx) where t.row_id = 'r137'")
    assert "Question 137" in str(body) and '"type":"text"' in str(raw).replace(" ", "")
    # The call was paid for: its cost counts.
    assert q(many, "select cost_usd from results r join trials t using (run_id, idx) "
                   "where t.row_id = 'r137'") == [(pytest.approx(5e-6),)]


def test_resume_after_one_unstorable_answer_sends_only_that_one(raw_provider: Path) -> None:
    many = raw_provider
    run(many, Counting([POISONED], lambda n: chat([{"type": "text", "text": "x"}])))
    again = Counting([], chat)
    stats = resume(many, again)
    assert again.seen == [POISONED]
    assert stats.ok == 1
    assert statuses(many) == {"ok": N}


def test_a_lone_surrogate_in_an_answer_is_stored_as_a_replacement_character(
        many: Path) -> None:
    # JSON may carry "\ud800"; Python decodes it to a string no database driver can encode.
    def lone(n: int) -> httpx.Response:
        return httpx.Response(200, content=b'{"model": "m", "choices": [{"message": {"content":'
                                           b' "half \\ud800 a pair"}, "finish_reason": "stop"}]}',
                              headers={"content-type": "application/json"})

    handler = Counting([POISONED], lone)
    stats = run(many, handler)
    assert len(handler.seen) == N and (stats.ok, stats.errors) == (N, 0)
    [(output,)] = q(many, "select output from results join trials using (run_id, idx) "
                          "where row_id = 'r137'")
    assert output == "half \ufffd a pair"


@pytest.mark.parametrize(("usage", "stored"), [
    ({"prompt_tokens": "3", "completion_tokens": 1.0}, (3, 1)),
    ({"prompt_tokens": 2**70, "completion_tokens": 1}, (None, 1)),
    ({"prompt_tokens": float("nan"), "completion_tokens": [1]}, (None, None)),
    ({"prompt_tokens": True, "completion_tokens": "many"}, (None, None)),
])
def test_token_counts_that_are_not_32_bit_integers_are_stored_as_numbers_or_none(
        many: Path, usage: dict[str, object], stored: tuple[int | None, int | None]) -> None:
    def odd(n: int) -> httpx.Response:
        # json cannot write NaN as the API would, so it is spliced in as Python's token.
        return httpx.Response(200, content=json.dumps(
            {"model": "m", "choices": [{"message": {"content": "odd"}, "finish_reason": "stop"}],
             "usage": usage}).encode(), headers={"content-type": "application/json"})

    handler = Counting([POISONED], odd)
    stats = run(many, handler)
    assert (stats.ok, stats.errors) == (N, 0)
    [(inp, out, cost)] = q(many, "select input_tokens, output_tokens, cost_usd from results "
                                 "join trials using (run_id, idx) where row_id = 'r137'")
    assert (inp, out) == stored
    if stored == (None, None):
        assert cost is None
    else:
        assert cost == pytest.approx(((inp or 0) * 1.0 + (out or 0) * 2.0) / 1e6)


def test_a_streamed_answer_with_token_counts_as_text_does_not_stop_the_run(many: Path) -> None:
    def streamed(request: httpx.Request) -> httpx.Response:
        n = question(request)
        usage = {"prompt_tokens": "3", "completion_tokens": "5"} if n == POISONED else {
            "prompt_tokens": 3, "completion_tokens": 5}
        chunks = [{"model": "m", "choices": [{"delta": {"content": f"answer {n}"}}]},
                  {"model": "m", "choices": [{"delta": {}, "finish_reason": "stop"}],
                   "usage": usage}]
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=body.encode(),
                              headers={"content-type": "text/event-stream"})

    stats = run(many, streamed, "models.m.stream=true")
    assert (stats.ok, stats.errors) == (N, 0)
    [(inp, out, speed)] = q(many, "select input_tokens, output_tokens, tokens_per_s from "
                                  "results join trials using (run_id, idx) "
                                  "where row_id = 'r137'")
    assert (inp, out) == (3, 5)
    assert speed is None or speed > 0


def test_oversized_and_odd_metadata_is_bounded_with_a_visible_marker(many: Path) -> None:
    def odd(n: int) -> httpx.Response:
        return httpx.Response(200, json={
            "model": "m" * 600, "system_fingerprint": {"fp": 1},
            "choices": [{"message": {"content": "odd"}, "finish_reason": "s" * 80}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}})

    run(many, Counting([POISONED], odd))
    assert statuses(many) == {"ok": N}
    [(model, reason, fp)] = q(many, "select response_model, finish_reason, fingerprint from "
                                    "results join trials using (run_id, idx) "
                                    "where row_id = 'r137'")
    assert isinstance(model, str) and len(model) == 500 and model.startswith("mmm")
    assert "[600 chars]" in model
    assert isinstance(reason, str) and len(reason) == 50 and "[80 chars]" in reason
    assert fp == '{"fp": 1}'


def test_row_ids_over_200_characters_are_shortened_with_a_hash_and_stay_distinct(
        many: Path) -> None:
    long_a, long_b = "x" * 250 + "-a", "x" * 250 + "-b"
    write(many / "data/rows.jsonl", "".join(
        json.dumps({"id": rid, "n": i}) + "\n"
        for i, rid in enumerate([long_a, long_b, "short"])))
    run(many, Counting([], chat))
    ids = [str(r[0]) for r in q(many, "select row_id from trials order by idx")]
    assert ids[2] == "short"
    assert [len(i) for i in ids[:2]] == [200, 200] and ids[0] != ids[1]
    assert ids[0].startswith("x" * 150)


class Refusing(Store):
    """A store that notes when its database refused even an error row."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.gave_up = threading.Event()

    def write(self, records: Sequence[Record]) -> None:
        try:
            super().write(records)
        except Exception:
            if any(r.result.get("error_kind") == "unstorable" for r in records):
                self.gave_up.set()  # even an error row was refused
            raise


def test_a_database_that_refuses_even_error_rows_stops_the_run_at_once(many: Path) -> None:
    """The run stops sending instead of paying for calls it cannot record, and says why."""
    db = many / "results.db"
    store = Refusing.open(str(db))
    assert isinstance(store, Refusing)
    sent: list[int] = []
    deadline = time.monotonic() + 10

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(question(request))
        if len(sent) == 100:
            # The run row disappears (someone cleaned up the database): every trial row,
            # and so every error row too, now breaks a foreign key.
            with sqlite3.connect(db, timeout=10) as conn:
                conn.execute("delete from runs")
        elif len(sent) > 100:
            # Later calls wait (at most 10 s in all) for the writer to meet the refusal.
            while not store.gave_up.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        return chat("fine")

    s, client = session(many, store, handler)
    prepared = prepared_for(many)
    try:
        with pytest.raises(Exception, match="FOREIGN KEY"):
            s.run(NewRun(config=prepared.loaded.config), "r1")
    finally:
        asyncio.run(client.aclose())
        store.close()
    assert store.gave_up.is_set()
    # Only the calls already in flight when the writer gave up went out after it.
    assert len(sent) <= 100 + 2 * 8, len(sent)
