"""Images in prompts: content parts per API, each image stored once in artifacts and
referenced from stored requests, re-inflated for reproduce; a missing file is one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write
from requests_helpers import models, run

from promptlab.cli import main
from promptlab.experiment.reproduce import reproduce
from promptlab.providers import ProviderRequest, get_provider
from promptlab.spec import ModelSpec
from promptlab.testing import MockServer

PARTS = [{"role": "user", "content": [{"text": "Describe {{ id }}"},
                                      {"image": "{{ image }}"}]}]
URL = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize("provider,endpoint", [("openai", "chat"), ("openai", "responses"),
                                               ("anthropic", "chat")])
def test_image_parts_take_each_apis_form(provider: str, endpoint: str) -> None:
    model = ModelSpec("m", provider, "x", "http://h/v1", endpoint=endpoint)
    message = {"role": "user", "content": [{"type": "text", "text": "Describe"},
                                           {"type": "image", "url": URL}]}
    body = json.loads(get_provider(provider).build_request(
        model, ProviderRequest("x", [message], {}), None).body)
    parts = (body["input"] if endpoint == "responses" else body["messages"])[0]["content"]
    if provider == "anthropic":
        assert parts[1] == {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    elif endpoint == "responses":
        assert parts == [{"type": "input_text", "text": "Describe"},
                         {"type": "input_image", "image_url": URL}]
    else:
        assert parts[1] == {"type": "image_url", "image_url": {"url": URL}}


def _image_project(root: Path, rows: int, size: int) -> None:
    write(root / "experiments/prompts/plain.yaml",
          "# @package prompts.plain\n" + json.dumps({"messages": PARTS}) + "\n")
    (root / "img").mkdir(exist_ok=True)
    (root / "img/photo.png").write_bytes(os.urandom(size))
    write(root / "data/rows.jsonl", "".join(
        json.dumps({"id": f"r{i}", "image": "img/photo.png"}) + "\n" for i in range(rows)))


def test_one_image_is_stored_once_and_reproduce_finds_requests_identical(
        project: Path, mock_server: MockServer) -> None:
    models(project, mock_server.url + "/v1")
    _image_project(project, rows=250, size=200_000)  # x 4 grid points = 1,000 trials
    result, store = run(project, "models=[ch]", "prompts=[plain]")
    with store:
        assert result.ok and result.counts["planned"] == 1000
        size = Path(project / "results.db").stat().st_size
        print(f"database with 1,000 trials on one 200 KB image: {size / 1e6:.1f} MB")
        assert size < 20e6  # a copy per trial would be ~530 MB (messages + request bodies)
        sent = json.loads(mock_server.state.requests[0]["body"])
        assert sent["messages"][0]["content"][1]["image_url"]["url"].startswith(
            "data:image/png;base64,")
        drift = reproduce(store, result.run_id)
        assert drift.requests_identical == 1000 and not drift.requests_changed


def test_a_missing_image_is_one_line_before_any_call(
        project: Path, mock_server: MockServer, capsys: pytest.CaptureFixture[str]) -> None:
    models(project, mock_server.url + "/v1")
    _image_project(project, rows=2, size=10)
    (project / "img/photo.png").unlink()
    code = main(["run", "models=[ch]", "prompts=[plain]", "--experiments",
                 str(project / "experiments"), "--db", str(project / "results.db")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "image 'img/photo.png' not found" in err
    assert mock_server.request_count == 0
