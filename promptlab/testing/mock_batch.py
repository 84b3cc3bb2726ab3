"""The mock server's batch APIs: OpenAI Files + Batch and Anthropic Message Batches.

A batch is worked through on the clock: validating (OpenAI) for the first fifth of
``batch_delay_s``, in progress until it has passed, then completed (OpenAI) or ended
(Anthropic) with every result written at once. Each item is answered as the plain
endpoint would answer it, except a share that errors (``batch_errored``: a 500 / an
api_error) and a share that expires (``batch_expired``), drawn from the server's seeded
random source; a prompt containing ``MOCK_BATCH=errored`` or ``MOCK_BATCH=expired`` always
does. Cancelling ends a batch at once, its unanswered items cancelled.

Counters: ``batches:created``, ``batches:openai``, ``batches:anthropic``, ``files:uploaded``,
``batches:cancelled``, ``batch_items``. Both APIs list their batches, newest first (OpenAI
``GET /v1/batches?after=``, Anthropic ``GET /v1/messages/batches?after_id=``), and
``batch_create_delay_s`` holds the reply to a create after the batch exists, so that a test
can kill the client in that window.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from promptlab.testing.mock_responses import response_answer
from promptlab.testing.mock_wire import answer, prompt_text

__all__ = ["add_batch_routes"]

_MARKER = re.compile(r"MOCK_BATCH=(errored|expired)")


@dataclass
class _Batch:
    id: str
    api: str  # openai | anthropic
    requests: list[dict[str, Any]]
    created: float  # time.time()
    endpoint: str = "/v1/chat/completions"
    input_file_id: str | None = None
    metadata: dict[str, Any] | None = None
    cancelled_at: float | None = None
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (fate, line)
    done: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_batch_routes(app: web.Application, state: Any) -> None:
    """Mount the batch endpoints on the mock's app; `state` is the mock's shared state
    (config, counts, seeded rng)."""
    files: dict[str, dict[str, Any]] = {}
    batches: dict[str, _Batch] = {}
    seq = [0]

    def next_id(prefix: str) -> str:
        seq[0] += 1
        return f"{prefix}{seq[0]:06d}"

    def refused(request: web.Request) -> web.Response | None:
        key = state.config.api_key
        if key is None:
            return None
        given = (request.headers.get("x-api-key")
                 or request.headers.get("authorization", "").removeprefix("Bearer "))
        if given == key:
            return None
        return web.json_response({"error": {"message": "invalid api key"}}, status=401)

    def fate(body: dict[str, Any]) -> str:
        marker = _MARKER.search(prompt_text(body))
        if marker:
            return marker.group(1)
        x = state.rng.random()
        if x < state.config.batch_errored:
            return "errored"
        if x < state.config.batch_errored + state.config.batch_expired:
            return "expired"
        return "ok"

    def reply(flavour: str, body: dict[str, Any]) -> dict[str, Any]:
        if flavour == "responses":
            return response_answer(body)
        out = answer(flavour, body)
        text = prompt_text(body)
        for needle, replacement in state.config.alter.items():
            if needle in text:
                if flavour == "anthropic":
                    out["content"][0]["text"] = replacement
                elif flavour == "completions":
                    out["choices"][0]["text"] = replacement
                else:
                    out["choices"][0]["message"]["content"] = replacement
        return out

    def finish(b: _Batch) -> None:
        """Answer every item (once): at the end of the delay, or at a cancel."""
        if b.done:
            return
        b.done = True
        state.counts["batch_items"] += len(b.requests)
        for i, item in enumerate(b.requests):
            cid = item.get("custom_id")
            body = item.get("body") if b.api == "openai" else item.get("params")
            body = body if isinstance(body, dict) else {}
            what = "cancelled" if b.cancelled_at is not None else fate(body)
            if b.api == "openai":
                line: dict[str, Any] = {"id": f"batch_req_{b.id}_{i}", "custom_id": cid,
                                        "response": None, "error": None}
                if what == "ok":
                    flavour = {"/v1/completions": "completions",
                               "/v1/responses": "responses"}.get(b.endpoint, "openai")
                    line["response"] = {"status_code": 200, "request_id": f"req_{i}",
                                        "body": reply(flavour, body)}
                elif what == "errored":
                    line["response"] = {"status_code": 500, "request_id": f"req_{i}", "body": {
                        "error": {"message": "The server had an error processing your "
                                             "request.", "type": "server_error"}}}
                else:
                    code = "batch_expired" if what == "expired" else "batch_cancelled"
                    line["error"] = {"code": code, "message": (
                        "This request could not be executed before the completion window "
                        "expired." if what == "expired" else "The batch was cancelled.")}
            else:
                if what == "ok":
                    result: dict[str, Any] = {"type": "succeeded",
                                              "message": reply("anthropic", body)}
                elif what == "errored":
                    result = {"type": "errored", "error": {"type": "error", "error": {
                        "type": "api_error", "message": "Internal server error"}}}
                else:
                    result = {"type": "expired" if what == "expired" else "canceled"}
                line = {"custom_id": cid, "result": result}
            b.results.append((what, line))
        if b.api == "openai":
            ok = [line for what, line in b.results if what == "ok"]
            bad = [line for what, line in b.results if what != "ok"]
            b.output_file_id = store_file(ok, "batch_output") if ok else None
            b.error_file_id = store_file(bad, "batch_output") if bad else None

    def store_file(lines: list[dict[str, Any]], purpose: str) -> str:
        content = "".join(json.dumps(x) + "\n" for x in lines).encode()
        fid = next_id("file-mock")
        files[fid] = {"content": content, "filename": f"{fid}.jsonl", "purpose": purpose,
                      "created_at": int(time.time())}
        return fid

    def phase(b: _Batch) -> str:
        if b.cancelled_at is not None:
            finish(b)
            return "ended"
        elapsed = time.time() - b.created
        delay = state.config.batch_delay_s
        if elapsed >= delay:
            finish(b)
            return "ended"
        return "validating" if elapsed < delay / 5 and b.api == "openai" else "in_progress"

    def openai_view(b: _Batch) -> dict[str, Any]:
        p = phase(b)
        status = ("cancelled" if b.cancelled_at is not None else "completed") if p == "ended" \
            else p
        total = len(b.requests)
        failed = sum(1 for what, _ in b.results if what != "ok")
        now = int(time.time())
        return {"id": b.id, "object": "batch", "endpoint": b.endpoint, "errors": None,
                "input_file_id": b.input_file_id, "completion_window": "24h",
                "status": status, "output_file_id": b.output_file_id,
                "error_file_id": b.error_file_id, "created_at": int(b.created),
                "in_progress_at": int(b.created) if p != "validating" else None,
                "expires_at": int(b.created) + 86400,
                "finalizing_at": now if status == "completed" else None,
                "completed_at": now if status == "completed" else None,
                "failed_at": None, "expired_at": None,
                "cancelling_at": int(b.cancelled_at) if b.cancelled_at else None,
                "cancelled_at": int(b.cancelled_at) if b.cancelled_at else None,
                "request_counts": {"total": total, "completed": len(b.results) - failed,
                                   "failed": failed},
                "metadata": b.metadata}

    def anthropic_view(b: _Batch, base: str) -> dict[str, Any]:
        ended = phase(b) == "ended"
        counts = {"processing": 0 if ended else len(b.requests), "succeeded": 0,
                  "errored": 0, "canceled": 0, "expired": 0}
        for what, _ in b.results:
            counts[{"ok": "succeeded", "errored": "errored", "expired": "expired",
                    "cancelled": "canceled"}[what]] += 1
        return {"id": b.id, "type": "message_batch",
                "processing_status": "ended" if ended else (
                    "canceling" if b.cancelled_at else "in_progress"),
                "request_counts": counts, "ended_at": _iso(time.time()) if ended else None,
                "created_at": _iso(b.created), "expires_at": _iso(b.created + 86400),
                "archived_at": None, "cancel_initiated_at": _iso(b.cancelled_at),
                "results_url": f"{base}/v1/messages/batches/{b.id}/results" if ended else None}

    def guarded(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            state.counts["requests"] += 1
            state.counts[f"batch_path:{request.method} {request.path}"] += 1
            no = refused(request)
            if no is not None:
                return no
            result: web.StreamResponse = await handler(request)
            return result
        return wrapped

    def not_found(what: str) -> web.Response:
        return web.json_response({"error": {"message": f"No such {what}",
                                            "type": "invalid_request_error"}}, status=404)

    # -- OpenAI ---------------------------------------------------------------------------

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return web.json_response({"error": {"message": "file is required"}}, status=400)
        content = upload.file.read()
        fid = next_id("file-mock")
        files[fid] = {"content": content, "filename": upload.filename or "batch.jsonl",
                      "purpose": str(form.get("purpose") or "batch"),
                      "created_at": int(time.time())}
        state.counts["files:uploaded"] += 1
        return web.json_response(file_view(fid))

    def file_view(fid: str) -> dict[str, Any]:
        f = files[fid]
        return {"id": fid, "object": "file", "bytes": len(f["content"]),
                "created_at": f["created_at"], "filename": f["filename"],
                "purpose": f["purpose"], "status": "processed"}

    async def file_info(request: web.Request) -> web.Response:
        fid = request.match_info["id"]
        return web.json_response(file_view(fid)) if fid in files else not_found("file")

    async def file_content(request: web.Request) -> web.Response:
        f = files.get(request.match_info["id"])
        if f is None:
            return not_found("file")
        return web.Response(body=f["content"], content_type="application/octet-stream")

    async def create_openai(request: web.Request) -> web.Response:
        body = await request.json()
        f = files.get(body.get("input_file_id"))
        if f is None:
            return not_found("file")
        endpoint = body.get("endpoint")
        if endpoint not in ("/v1/chat/completions", "/v1/completions", "/v1/responses"):
            return web.json_response({"error": {"message": f"unsupported endpoint {endpoint}"}},
                                     status=400)
        lines = [json.loads(x) for x in f["content"].decode().splitlines() if x.strip()]
        b = _Batch(next_id("batch_mock"), "openai", lines, time.time(), endpoint,
                   body["input_file_id"], body.get("metadata"))
        batches[b.id] = b
        state.counts["batches:created"] += 1
        state.counts["batches:openai"] += 1
        await created_late()
        return web.json_response(openai_view(b))

    async def created_late() -> None:
        """The batch exists; the reply takes ``batch_create_delay_s`` (a client killed in
        between never hears of it)."""
        if state.config.batch_create_delay_s:
            await asyncio.sleep(state.config.batch_create_delay_s)

    def page(kind: str, request: web.Request, after_key: str) -> tuple[list[_Batch], bool]:
        """Batches of one API, newest first, after the cursor, at most ``limit``."""
        mine = [b for b in reversed(batches.values()) if b.api == kind]
        after = request.query.get(after_key)
        if after is not None:
            ids = [b.id for b in mine]
            mine = mine[ids.index(after) + 1:] if after in ids else []
        limit = max(1, min(int(request.query.get("limit") or 20), 100))
        return mine[:limit], len(mine) > limit

    async def list_openai(request: web.Request) -> web.Response:
        shown, more = page("openai", request, "after")
        data = [openai_view(b) for b in shown]
        return web.json_response({"object": "list", "data": data, "has_more": more,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def get_openai(request: web.Request) -> web.Response:
        b = batches.get(request.match_info["id"])
        return web.json_response(openai_view(b)) if b else not_found("batch")

    async def cancel_openai(request: web.Request) -> web.Response:
        b = batches.get(request.match_info["id"])
        if b is None:
            return not_found("batch")
        if not b.done:
            b.cancelled_at = time.time()
            state.counts["batches:cancelled"] += 1
        return web.json_response(openai_view(b))

    # -- Anthropic ------------------------------------------------------------------------

    def base_of(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    async def create_anthropic(request: web.Request) -> web.Response:
        body = await request.json()
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            return web.json_response({"type": "error", "error": {
                "type": "invalid_request_error", "message": "requests: required"}}, status=400)
        b = _Batch(next_id("msgbatch_mock"), "anthropic", items, time.time())
        batches[b.id] = b
        state.counts["batches:created"] += 1
        state.counts["batches:anthropic"] += 1
        await created_late()
        return web.json_response(anthropic_view(b, base_of(request)))

    async def list_anthropic(request: web.Request) -> web.Response:
        shown, more = page("anthropic", request, "after_id")
        data = [anthropic_view(b, base_of(request)) for b in shown]
        return web.json_response({"data": data, "has_more": more,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def get_anthropic(request: web.Request) -> web.Response:
        b = batches.get(request.match_info["id"])
        return web.json_response(anthropic_view(b, base_of(request))) if b else not_found(
            "batch")

    async def cancel_anthropic(request: web.Request) -> web.Response:
        b = batches.get(request.match_info["id"])
        if b is None:
            return not_found("batch")
        if not b.done:
            b.cancelled_at = time.time()
            state.counts["batches:cancelled"] += 1
        return web.json_response(anthropic_view(b, base_of(request)))

    async def results_anthropic(request: web.Request) -> web.StreamResponse:
        b = batches.get(request.match_info["id"])
        if b is None:
            return not_found("batch")
        if phase(b) != "ended":
            return web.json_response({"type": "error", "error": {
                "type": "invalid_request_error", "message": "batch not ended"}}, status=400)
        resp = web.StreamResponse(headers={"content-type": "application/binary"})
        await resp.prepare(request)
        chunk: list[str] = []
        for _, line in b.results:
            chunk.append(json.dumps(line) + "\n")
            if len(chunk) >= 1000:
                await resp.write("".join(chunk).encode())
                chunk = []
        if chunk:
            await resp.write("".join(chunk).encode())
        await resp.write_eof()
        return resp

    r = app.router
    r.add_post("/v1/files", guarded(upload))
    r.add_get("/v1/files/{id}", guarded(file_info))
    r.add_get("/v1/files/{id}/content", guarded(file_content))
    r.add_post("/v1/batches", guarded(create_openai))
    r.add_get("/v1/batches", guarded(list_openai))
    r.add_get("/v1/batches/{id}", guarded(get_openai))
    r.add_post("/v1/batches/{id}/cancel", guarded(cancel_openai))
    r.add_post("/v1/messages/batches", guarded(create_anthropic))
    r.add_get("/v1/messages/batches", guarded(list_anthropic))
    r.add_get("/v1/messages/batches/{id}", guarded(get_anthropic))
    r.add_post("/v1/messages/batches/{id}/cancel", guarded(cancel_anthropic))
    r.add_get("/v1/messages/batches/{id}/results", guarded(results_anthropic))
