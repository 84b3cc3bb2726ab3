"""The mock LLM server speaks the real wire formats and injects the faults it is asked for."""

from __future__ import annotations

import httpx
import pytest

from promptlab.testing import MockConfig, MockServer, mock_reply

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def test_openai_and_anthropic_shapes_and_models(mock_server: MockServer) -> None:
    with httpx.Client(base_url=mock_server.url) as c:
        oa = c.post("/v1/chat/completions", json=CHAT).json()
        assert oa["choices"][0]["message"]["content"] == mock_reply(CHAT)
        assert oa["usage"]["prompt_tokens"] >= 1 and oa["object"] == "chat.completion"
        an = c.post("/v1/messages", json={**CHAT, "max_tokens": 2}).json()
        assert an["type"] == "message" and an["stop_reason"] == "max_tokens"
        assert an["content"][0]["text"] == " ".join(mock_reply({**CHAT, "max_tokens": 2})
                                                    .split()[:2])
        assert [m["id"] for m in c.get("/v1/models").json()["data"]]


def test_output_is_deterministic_and_depends_on_every_parameter() -> None:
    assert mock_reply(CHAT) == mock_reply(dict(CHAT))
    assert mock_reply(CHAT) != mock_reply({**CHAT, "temperature": 0.5})


@pytest.mark.parametrize(("kind", "status"), [("429", 429), ("500", 500), ("529", 529)])
def test_fault_markers(mock_server: MockServer, kind: str, status: int) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": f"x MOCK_FAULT={kind}"}]}
    r = httpx.post(mock_server.url + "/v1/chat/completions", json=body)
    assert r.status_code == status
    if kind == "429":
        assert float(r.headers["retry-after"]) >= 0


def test_drop_and_malformed(mock_server: MockServer) -> None:
    drop = {"model": "m", "messages": [{"role": "user", "content": "MOCK_FAULT=drop"}]}
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(mock_server.url + "/v1/chat/completions", json=drop)
    bad = {"model": "m", "messages": [{"role": "user", "content": "MOCK_FAULT=malformed"}]}
    r = httpx.post(mock_server.url + "/v1/chat/completions", json=bad)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_fault_rates_are_seeded_and_counted() -> None:
    with MockServer(MockConfig(faults={"500": 0.5}, seed=7)) as s:
        statuses = [httpx.post(s.url + "/v1/chat/completions", json=CHAT).status_code
                    for _ in range(200)]
        assert 60 < statuses.count(500) < 140
        assert s.state.counts["fault:500"] == statuses.count(500)
        assert s.request_count == 200


def test_api_key_required_when_configured() -> None:
    with MockServer(MockConfig(api_key="k1")) as s:
        url = s.url + "/v1/chat/completions"
        assert httpx.post(url, json=CHAT).status_code == 401
        assert httpx.post(url, json=CHAT, headers={"authorization": "Bearer k1"}).status_code == 200
