"""The generic HTTP provider reaches a differently shaped API (Gemini's) with no code."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import REPO

from promptlab.cli import main
from promptlab.testing import MockConfig, MockServer
from promptlab.testing.mock_wire import truncate

SECRET = "sk-test-SECRET-4242"


@pytest.fixture
def gemini(project: Path) -> MockServer:
    model = (REPO / "experiments/models/gemini-flash.yaml").read_text()
    model = model.replace("models.gemini-flash", "models.gem").replace(
        "https://generativelanguage.googleapis.com", "{url}")
    model = model.replace("GEMINI_API_KEY", "PROMPTLAB_TEST_OA_KEY")
    model = model.replace("api_key_header: x-goog-api-key", "api_key_param: key")
    (project / "experiments/models/gem.yaml").write_text(model)
    return MockServer(MockConfig(api_key=SECRET))


def test_documented_gemini_config_works_against_a_gemini_shaped_server(
        project: Path, gemini: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    with gemini as server:
        f = project / "experiments/models/gem.yaml"
        f.write_text(f.read_text().replace("{url}", server.url))
        assert main(["run", "--db", "g.db", "models=[gem]", "grid.params.top_p=[1]",
                     "+grid.params.max_tokens=[4]"]) == 0
        received = list(server.state.requests)
    assert len(received) == 2 * 2 * 3
    with sqlite3.connect(project / "g.db") as conn:
        rows = conn.execute("select a.request_body, a.url, r.output, r.input_tokens, "
                            "r.output_tokens, r.finish_reason, r.response_model, r.status "
                            "from attempts a join results r using (run_id, idx)").fetchall()
    for body, url, output, tin, tout, finish, model, status in rows:
        sent = json.loads(body)
        assert status == "ok"
        assert url.endswith("/v1beta/models/gemini-2.0-flash:generateContent?key=[REDACTED]")
        assert sent["generationConfig"]["maxOutputTokens"] == 4
        assert output == truncate(sent)[0]
        assert (tin > 0, tout, finish, model) == (True, 4, "MAX_TOKENS", "mock-gemini-001")
    fewshot = [json.loads(r[0]) for r in rows if "systemInstruction" in r[0]]
    assert len(fewshot) == 6
    assert [c["role"] for c in fewshot[0]["contents"]] == ["user", "model", "user"]
    assert all(r["query"] == f"key={SECRET}" for r in received)  # the key did go out ...
    assert SECRET.encode() not in (project / "g.db").read_bytes()  # ... and was not stored


def test_retry_classification_is_configurable_by_status(project: Path, gemini: MockServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    (project / "data/rows.jsonl").write_text('{"id": "x", "country": "MOCK_FAULT=400"}\n')
    with gemini as server:
        f = project / "experiments/models/gem.yaml"
        f.write_text(f.read_text().replace("{url}", server.url).replace(
            '"503": transient', '"400": transient'))
        assert main(["run", "--db", "g.db", "models=[gem]", "prompts=[plain]",
                     "grid.params.top_p=[1]", "grid.params.temperature=[0]"]) == 1
        assert server.request_count == 3  # retried as transient, up to run.max_attempts


def test_body_template_errors_stop_before_any_call(project: Path, gemini: MockServer,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    with gemini as server:
        f = project / "experiments/models/gem.yaml"
        f.write_text(f.read_text().replace("{url}", server.url).replace(
            "{{ m.content | tojson }}", "{{ m.content }}"))
        assert main(["run", "--db", "g.db", "models=[gem]"]) == 2
        assert server.request_count == 0
    assert not (project / "g.db").exists()  # failed before even a run was recorded
    err = capsys.readouterr().err
    assert "models.gem.http.body does not render to JSON" in err and "tojson" in err
