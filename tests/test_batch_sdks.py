"""The mock's batch APIs as the official SDKs see them: `openai` (files, batches) and
`anthropic` (messages.batches) accept every answer."""

from __future__ import annotations

import io
import json

import pytest

from promptlab.testing import MockConfig, MockServer

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


def test_openai_sdk_uploads_creates_polls_and_reads_a_batch(
        request: pytest.FixtureRequest) -> None:
    with MockServer(MockConfig(batch_delay_s=0.0)) as server:
        client = openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0)
        request.addfinalizer(client.close)  # its pooled sockets, closed before the server
        lines = [{"custom_id": f"t{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}}
                 for i in range(3)]
        data = "".join(json.dumps(x) + "\n" for x in lines).encode()
        uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id,
                                      endpoint="/v1/chat/completions", completion_window="24h")
        got = client.batches.retrieve(batch.id)
        assert got.status == "completed"
        assert got.request_counts is not None and got.request_counts.completed == 3
        assert got.output_file_id is not None
        out = client.files.content(got.output_file_id).text.splitlines()
        assert [json.loads(x)["custom_id"] for x in out] == ["t0", "t1", "t2"]
        cancelled = client.batches.cancel(batch.id)
        assert cancelled.id == batch.id


def test_anthropic_sdk_creates_polls_and_streams_message_batch_results(
        request: pytest.FixtureRequest) -> None:
    with MockServer(MockConfig(batch_delay_s=0.0, batch_expired=0.0)) as server:
        client = anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0)
        request.addfinalizer(client.close)
        batch = client.messages.batches.create(requests=[
            {"custom_id": f"t{i}", "params": {"model": "m", "max_tokens": 10, "messages": [
                {"role": "user", "content": f"MOCK_BATCH=expired q{i}" if i == 1 else "q"}]}}
            for i in range(3)])
        got = client.messages.batches.retrieve(batch.id)
        assert got.processing_status == "ended"
        assert got.request_counts.succeeded == 2 and got.request_counts.expired == 1
        results = list(client.messages.batches.results(batch.id))
        assert [r.result.type for r in results] == ["succeeded", "expired", "succeeded"]
        assert results[0].result.type == "succeeded"
        assert results[0].result.message.content[0].type == "text"
        client.messages.batches.cancel(batch.id)
