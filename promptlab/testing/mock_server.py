"""A mock LLM server that is real HTTP: OpenAI chat and text completions, the OpenAI
Responses API, /v1/models, Anthropic Messages, and a Gemini-shaped generateContent; JSON
or SSE streams; tool calls when a request gives tools (see mock_wire).

Outputs are deterministic functions of the request (`mock_reply`), so tests can predict
them. Latency is configurable per server (``latency_ms``) and per request (header
``x-mock-latency-ms``). Faults are injected at configured rates (``faults``: 429 with
Retry-After, 500, 529 overloaded, slow, drop, malformed) from a seeded random source, or
on demand by a request whose prompt contains ``MOCK_FAULT=<kind>`` (also 400, and
``midstream``: a stream that breaks after its first words). A rate cap (``max_rps``, a
token bucket: mock_rate) answers requests over the rate with 429 and Retry-After at once.

Counters at ``GET /_mock/stats``; received bodies at ``GET /_mock/requests``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from promptlab.testing.mock_batch import add_batch_routes
from promptlab.testing.mock_rate import RateCap
from promptlab.testing.mock_responses import (
    response_answer,
    response_error_frame,
    response_frames,
)
from promptlab.testing.mock_wire import answer, mock_reply, prompt_text, stream_frames

__all__ = ["MockConfig", "MockServer", "mock_reply", "build_app", "serve", "watch_parent"]

_MARKER = re.compile(r"MOCK_FAULT=(400|429|500|529|slow|drop|malformed|midstream)")
FAULT_KINDS = ("429", "500", "529", "slow", "drop", "malformed", "midstream")


@dataclass
class MockConfig:
    latency_ms: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)
    slow_ms: float = 5000.0
    retry_after_s: float = 0.01
    seed: int = 0
    api_key: str | None = None
    keep_requests: int = 200_000
    # Replies to change: a prompt containing a key is answered with its value instead, so
    # a test can make the "model" drift on chosen rows.
    alter: dict[str, str] = field(default_factory=dict)
    # The batch APIs (mock_batch.py): seconds until a batch ends; shares of items that error
    # and that expire.
    batch_delay_s: float = 0.0
    batch_errored: float = 0.0
    batch_expired: float = 0.0
    batch_create_delay_s: float = 0.0  # the reply to a create, held after the batch exists
    # A provider's rate limit: requests over `max_rps` a second (a token bucket holding
    # `burst`, by default a tenth of a second's worth) get 429 with Retry-After
    # `retry_after_s`, counted as rate:429 (the admitted as rate:ok). `rate_headers` sends
    # OpenAI's x-ratelimit-*-requests headers with every answer.
    max_rps: float | None = None
    burst: float | None = None
    rate_headers: bool = False


class _State:
    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.counts: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.cap = RateCap(config.max_rps, config.burst) if config.max_rps else None

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


def _fault_response(fault: str, state: _State) -> web.Response | None:
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
    if fault == "malformed":
        return web.Response(body=b'{"id": "broken", "choices": [', status=200,
                            content_type="application/json")
    return None


async def _stream(request: web.Request, flavour: str, body: dict[str, Any],
                  midstream: bool) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream",
                                       "cache-control": "no-cache"})
    await resp.prepare(request)
    frames = response_frames(body) if flavour == "responses" else stream_frames(flavour, body)
    for i, frame in enumerate(frames):
        if midstream and i == 3:
            if flavour == "responses":  # the Responses API sends an error event
                await resp.write(response_error_frame(i))
                await resp.write_eof()
                return resp
            if flavour == "anthropic":  # Anthropic reports overload as an event mid-stream
                await resp.write(b'event: error\ndata: {"type": "error", "error": {"type": '
                                 b'"overloaded_error", "message": "Overloaded"}}\n\n')
                await resp.write_eof()
                return resp
            assert request.transport is not None
            request.transport.abort()  # others just drop the connection
            raise asyncio.CancelledError
        await resp.write(frame)
    await resp.write_eof()
    return resp


def _replace_text(flavour: str, reply: dict[str, Any], text: str) -> None:
    if flavour == "responses":
        for item in reply["output"]:
            if item["type"] == "message":
                item["content"][0]["text"] = text
    elif flavour == "anthropic":
        next(b for b in reply["content"] if b["type"] == "text")["text"] = text
    elif flavour == "gemini":
        reply["candidates"][0]["content"]["parts"][0]["text"] = text
    elif flavour == "completions":
        reply["choices"][0]["text"] = text
    else:
        reply["choices"][0]["message"]["content"] = text


def build_app(config: MockConfig | None = None) -> web.Application:
    state = _State(config or MockConfig())
    app = web.Application(client_max_size=256 * 2**20)  # a batch file may be 200 MB
    app[STATE] = state
    add_batch_routes(app, state)

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
            state.requests.append({"path": request.path, "body": raw.decode("utf-8"),
                                   "query": request.query_string,
                                   "headers": {k.lower(): v for k, v in request.headers.items()}})
        if state.config.api_key is not None:
            given = (request.headers.get("x-api-key") or request.query.get("key")
                     or request.headers.get("authorization", "").removeprefix("Bearer "))
            if given != state.config.api_key:
                state.counts["status:401"] += 1
                return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        budget: dict[str, str] = {}
        if state.cap is not None:
            admitted = state.cap.take()
            state.counts["rate:ok" if admitted else "rate:429"] += 1
            budget = state.cap.headers() if state.config.rate_headers else {}
            if not admitted:
                return web.json_response(
                    {"error": {"type": "rate_limit_error", "message": "rate limit reached"}},
                    status=429, headers={**budget,
                                         "retry-after": f"{state.config.retry_after_s:g}"})
        delay = float(request.headers.get("x-mock-latency-ms", state.config.latency_ms))
        fault = state.pick_fault(prompt_text(body))
        if fault:
            state.counts[f"fault:{fault}"] += 1
        if fault == "slow":
            delay = max(delay, state.config.slow_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        failed = _fault_response(fault, state) if fault else None
        if failed is not None:
            return failed
        state.counts["status:200"] += 1
        if body.get("stream") and flavour != "gemini":
            return await _stream(request, flavour, body, fault == "midstream")
        reply = response_answer(body) if flavour == "responses" else answer(flavour, body)
        text = prompt_text(body)
        for needle, replacement in state.config.alter.items():
            if needle in text:
                _replace_text(flavour, reply, replacement)
        return web.json_response(reply, headers=budget or None)

    def route(flavour: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await handle(request, flavour)
        return handler

    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", route("openai"))
    app.router.add_post("/v1/completions", route("completions"))
    app.router.add_post("/v1/messages", route("anthropic"))
    app.router.add_post("/v1/responses", route("responses"))
    app.router.add_post("/v1beta/models/{model}:generateContent", route("gemini"))
    app.router.add_get("/_mock/stats", stats)
    app.router.add_get("/_mock/requests", received)
    app.router.add_post("/_mock/reset", reset)
    return app


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


def watch_parent(pid: int) -> None:
    """Exit this process when process `pid` is gone (a managed server outliving its run)."""
    import os
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except OSError:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
