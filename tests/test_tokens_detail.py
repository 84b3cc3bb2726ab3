"""Reasoning and cached tokens recorded per result and priced; Anthropic thinking stored
apart from the output text; structured output parsed and stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from requests_helpers import models, run

from promptlab.testing import MockServer

PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 10.0, "cached_input_per_mtok": 0.1,
         "cache_write_per_mtok": 2.0}


@pytest.mark.parametrize("alias,params", [
    ("ch", {"reasoning_effort": "low"}), ("rs", {"reasoning": {"effort": "low"}}),
    ("an", {"max_tokens": 50, "thinking": {"type": "enabled", "budget_tokens": 1024}})])
def test_cached_and_reasoning_tokens_are_recorded_and_priced(
        project: Path, mock_server: MockServer, alias: str, params: dict) -> None:
    models(project, mock_server.url + "/v1", **{alias: {"price": PRICE, "params": params}})
    (project / "templates/ask.j2").write_text(
        "MOCK_CACHED=4 What is the capital of {{ country }}?\n")
    result, store = run(project, f"models=[{alias}]", "prompts=[plain]")
    with store:
        assert result.ok
        for row in store.export_rows(result.run_id):
            r = row["result"]
            assert r["cached_input_tokens"] == 4
            fresh = r["input_tokens"] - 4
            expected = (fresh * 1.0 + 4 * 0.1 + r["output_tokens"] * 10.0) / 1e6
            assert r["cost_usd"] == pytest.approx(expected)
            if alias == "an":
                assert r["reasoning"] == "mock thinks it over"
                assert "mock thinks" not in r["output"]
            else:
                assert r["reasoning_tokens"] == 3
            if alias == "rs":
                assert r["reasoning"] == "mock reasoned briefly"


def test_structured_output_is_parsed_stored_and_scored(project: Path,
                                                        mock_server: MockServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"]}
    models(project, mock_server.url + "/v1", ch={"response_format": {
        "type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})
    # The mock echoes the prompt: a prompt that is JSON gives JSON (and a tail) back, so
    # alter the replies to pure JSON.
    mock_server.config.alter["capital"] = '{"answer": "Paris"}'
    write(project / "experiments/scorers/s.yaml", "")
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  shape:\n    type: json_schema\n"
                   f"    schema: {json.dumps(schema)}\n")
    result, store = run(project, "models=[ch]", "prompts=[plain]")
    with store:
        rows = list(store.export_rows(result.run_id))
        sent = json.loads(rows[0]["request"]["body"])
        assert sent["response_format"]["json_schema"]["schema"] == schema
        assert {json.loads(r["result"]["parsed_json"])["answer"] for r in rows} == {"Paris"}
        assert {s["shape"][1] for s in store.scores(result.run_id).values()} == {True}
