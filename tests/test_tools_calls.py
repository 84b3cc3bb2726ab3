"""Tool calls as results: one neutral tools form, translated per API, parsed in order,
stored, shown, exported and scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write
from requests_helpers import WEATHER, models, run

from promptlab.cli import main
from promptlab.providers import ProviderRequest, get_provider
from promptlab.spec import ModelSpec
from promptlab.testing import MockServer


def _prompt_with_tools(root: Path, choice: str | None = None) -> None:
    prompt = {"messages": [{"role": "user", "content": "Weather in {{ city }}"}],
              "tools": WEATHER, "scorers": {"called": {"type": "tool_call"}}}
    if choice:
        prompt["tool_choice"] = choice
    write(root / "experiments/prompts/plain.yaml",
          "# @package prompts.plain\n" + json.dumps(prompt) + "\n")
    write(root / "data/rows.jsonl", "".join(json.dumps(r) + "\n" for r in [
        {"id": "osl", "city": "Oslo", "expected_tool": "get_weather",
         "expected_arguments": {"city": "Oslo"}},
        {"id": "rom", "city": "Rome", "expected_tool": "get_weather",
         "expected_arguments": {"city": "Paris"}}]))


@pytest.mark.parametrize("provider,endpoint,key", [
    ("openai", "chat", "tools"), ("openai", "responses", "tools"), ("anthropic", "chat", "tools")])
def test_neutral_tools_translate_per_api(provider: str, endpoint: str, key: str) -> None:
    model = ModelSpec("m", provider, "x", "http://h/v1", endpoint=endpoint)
    body = json.loads(get_provider(provider).build_request(model, ProviderRequest(
        "x", [{"role": "user", "content": "q"}], {}, tools=tuple(WEATHER),
        tool_choice="required"), None).body)
    tool = body["tools"][0]
    if provider == "anthropic":
        assert tool == {"name": "get_weather", "description": "Weather for a city",
                        "input_schema": WEATHER[0]["parameters"]}
        assert body["tool_choice"] == {"type": "any"}
    elif endpoint == "responses":
        assert tool == {"type": "function", **WEATHER[0]} and body["tool_choice"] == "required"
    else:
        assert tool == {"type": "function", "function": WEATHER[0]}
        assert body["tool_choice"] == "required"


@pytest.mark.parametrize("alias,stream", [("ch", False), ("ch", True), ("rs", False),
                                          ("rs", True), ("an", False), ("an", True)])
def test_calls_are_stored_exported_and_scored(project: Path, mock_server: MockServer,
                                              alias: str, stream: bool) -> None:
    models(project, mock_server.url + "/v1", **{alias: {"stream": stream}})
    _prompt_with_tools(project)
    result, store = run(project, f"models=[{alias}]", "prompts=[plain]")
    with store:
        assert result.ok
        exported = list(store.export_rows(result.run_id))
        for r in exported:
            calls = json.loads(r["result"]["tool_calls_json"])
            city = {"osl": "Oslo", "rom": "Rome"}[r["row_id"]]
            assert [(c["name"], c["arguments"]) for c in calls] == [
                ("get_weather", {"city": city, "unit": "celsius"})]
        row_of = {r["idx"]: r["row_id"] for r in exported}
        verdicts = {(row_of[idx], s["called"][1])
                    for idx, s in store.scores(result.run_id).items()}
        assert verdicts == {("osl", True), ("rom", False)}


def test_show_trial_prints_the_calls(project: Path, mock_server: MockServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    models(project, mock_server.url + "/v1")
    _prompt_with_tools(project, "get_weather")
    result, store = run(project, "models=[ch]", "prompts=[plain]")
    store.close()
    code = main(["show", result.run_id, "--trial", "0", "--db", str(project / "results.db")])
    out = capsys.readouterr().out
    assert code == 0
    assert 'tool call 1: get_weather({"city": "Oslo", "unit": "celsius"})' in out


def test_unknown_tool_key_is_one_line_before_any_call(project: Path,
                                                      mock_server: MockServer,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    models(project, mock_server.url + "/v1", ch={"tools": [{"name": "f", "schema": {}}]})
    code = main(["run", "models=[ch]", "prompts=[plain]", "--experiments",
                 str(project / "experiments"), "--db", str(project / "results.db")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "unknown key 'schema'" in err and len(err.splitlines()) == 1
    assert mock_server.request_count == 0
