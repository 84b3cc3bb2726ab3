"""A mock LLM server that is real HTTP: OpenAI Chat Completions, /v1/models, Anthropic Messages.

Outputs are deterministic functions of the request (`mock_reply`), so tests can predict
them. Latency is configurable per server (``latency_ms``) and per request (header
``x-mock-latency-ms``). Faults are injected at configured rates (``faults``: 429 with
Retry-After, 500, 529 overloaded, slow, drop, malformed) from a seeded random source, or
on demand by a request whose last message contains ``MOCK_FAULT=<kind>``.

Counters at ``GET /_mock/stats``; received bodies at ``GET /_mock/requests``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["MockConfig", "MockServer", "mock_reply", "build_app", "serve"]

_MARKER = re.compile(r"MOCK_FAULT=(400|429|500|529|slow|drop|malformed)")
FAULT_KINDS = ("429", "500", "529", "slow", "drop", "malformed")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")


@dataclass
class MockConfig:
    latency_ms: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)
    slow_ms: float = 5000.0
    retry_after_s: float = 0.01
    seed: int = 0
    api_key: str | None = None
    keep_requests: int = 200_000


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
            return str(content)
    return ""


def mock_reply(body: dict[str, Any]) -> str:
    """The deterministic output for a request body (OpenAI or Anthropic shaped).

    It echoes the last user message and appends words chosen by a hash of the whole
    request, so a change to any parameter changes the output.
    """
    prompt = _last_user_text(body.get("messages") or [])
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    tail = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:3])
    return f"{prompt[:200]} -> {tail}"


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class _State:
    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.counts: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def pick_fault(self, text: str) -> str | None:
        marker = _MARKER.search(text)
        if marker:
            return marker.group(1)
        x = self.rng.random()
        acc = 0.0
        for kind in FAULT_KINDS:
            acc += self.config.faults.get(kind, 0.0)
            if x < acc:
                return kind
        return None


STATE = web.AppKey("state", _State)


def build_app(config: MockConfig | None = None) -> web.Application:
    state = _State(config or MockConfig())
    app = web.Application()
    app[STATE] = state

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "mock-small", "object": "model"}, {"id": "mock-large", "object": "model"}]})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(dict(state.counts))

    async def received(request: web.Request) -> web.Response:
        return web.json_response(state.requests)

    async def reset(request: web.Request) -> web.Response:
        state.counts.clear()
        state.requests.clear()
        return web.json_response({"ok": True})

    async def handle(request: web.Request, flavour: str) -> web.StreamResponse:
        raw = await request.read()
        state.counts["requests"] += 1
        state.counts[f"path:{request.path}"] += 1
        try:
            body = json.loads(raw)
        except ValueError:
            state.counts["status:400"] += 1
            return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
        if len(state.requests) < state.config.keep_requests:
            state.requests.append({"path": request.path, "body": raw.decode("utf-8")})
        if state.config.api_key is not None:
            given = request.headers.get("x-api-key") or request.headers.get(
                "authorization", "").removeprefix("Bearer ")
            if given != state.config.api_key:
                state.counts["status:401"] += 1
                return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        delay = float(request.headers.get("x-mock-latency-ms", state.config.latency_ms))
        fault = state.pick_fault(_last_user_text(body.get("messages") or []))
        if fault:
            state.counts[f"fault:{fault}"] += 1
        if fault == "slow":
            delay = max(delay, state.config.slow_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if fault == "429":
            return web.json_response(
                {"error": {"type": "rate_limit_error", "message": "slow down"}}, status=429,
                headers={"retry-after": f"{state.config.retry_after_s:g}"})
        if fault == "400":
            return web.json_response({"error": {"message": "bad request"}}, status=400)
        if fault == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "529":
            return web.json_response(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                status=529)
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if fault == "malformed":
            return web.Response(body=b'{"id": "broken", "choices": [', status=200,
                                content_type="application/json")
        state.counts["status:200"] += 1
        return web.json_response(_answer(flavour, body))

    async def chat(request: web.Request) -> web.StreamResponse:
        return await handle(request, "openai")

    async def messages(request: web.Request) -> web.StreamResponse:
        return await handle(request, "anthropic")

    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/_mock/stats", stats)
    app.router.add_get("/_mock/requests", received)
    app.router.add_post("/_mock/reset", reset)
    return app


def _answer(flavour: str, body: dict[str, Any]) -> dict[str, Any]:
    text = mock_reply(body)
    max_tokens = body.get("max_tokens")
    words = text.split()
    finish = "stop"
    if isinstance(max_tokens, int) and len(words) > max_tokens:
        text, finish = " ".join(words[:max_tokens]), "length"
    messages = body.get("messages") or []
    prompt_tokens = sum(_count_tokens(str(m.get("content", ""))) for m in messages)
    if flavour == "anthropic":
        prompt_tokens += _count_tokens(str(body.get("system", ""))) if body.get("system") else 0
        return {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn" if finish == "stop" else "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": _count_tokens(text)},
        }
    return {
        "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model"), "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": _count_tokens(text),
                  "total_tokens": prompt_tokens + _count_tokens(text)},
    }


class MockServer:
    """The mock server on 127.0.0.1 in a background thread, for tests.

    ``with MockServer() as server: server.url`` gives ``http://127.0.0.1:PORT``.
    """

    def __init__(self, config: MockConfig | None = None, port: int = 0) -> None:
        self.config = config or MockConfig()
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.app = build_app(self.config)

    @property
    def state(self) -> _State:
        state = self.app[STATE]
        return state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_count(self) -> int:
        return self.state.counts["requests"]

    def start(self) -> MockServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def boot() -> None:
            self._runner = web.AppRunner(self.app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(boot())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="mock-llm-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("mock server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(port: int, config: MockConfig, host: str = "127.0.0.1") -> None:
    """Run the mock server in the foreground until interrupted."""
    web.run_app(build_app(config), host=host, port=port, access_log=None, print=None,
                handle_signals=True)
