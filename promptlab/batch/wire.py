"""The batch APIs' own calls, as pure translation: upload, create, poll, cancel, read.

`OpenAIBatches` speaks the Files + Batch API (a JSONL file uploaded with purpose
``batch``, then ``POST /batches``); `AnthropicBatches` speaks Message Batches (the
requests in the body of ``POST /messages/batches``). Each builds `HttpRequest`s from the
headers of a trial's built request (so a model's auth and extra headers apply) and reads
the replies into a `BatchState`. The executor sends them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from promptlab.errors import ProviderError
from promptlab.providers.base import HttpRequest, dumps
from promptlab.spec import ModelSpec

__all__ = ["AnthropicBatches", "BatchState", "BatchWire", "OpenAIBatches", "batch_endpoint",
           "wire_for"]

OPENAI_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchState:
    """What a poll said: the provider's status word, whether the batch has ended, counts,
    and where its results are."""

    batch_id: str
    status: str
    ended: bool
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    results_url: str | None = None
    error: str | None = None


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise ProviderError(f"{what}: not JSON: {body[:200]!r}") from None
    if not isinstance(data, dict):
        raise ProviderError(f"{what}: expected a JSON object")
    return data


class BatchWire:
    api = ""
    max_requests = 0
    max_bytes = 0
    uploads = False  # True: the lines go up as a file first

    def __init__(self, model: ModelSpec, template: HttpRequest, default_base_url: str) -> None:
        self.model = model
        self.base = (model.base_url or default_base_url).rstrip("/")
        headers = dict(template.headers)
        headers["accept"] = "application/json"
        self._template = replace(template, headers=headers, body=b"")

    def _request(self, method: str, path: str, body: bytes = b"",
                 content_type: str | None = None) -> HttpRequest:
        headers = dict(self._template.headers)
        if content_type is not None:
            headers["content-type"] = content_type
        url = path if "://" in path else self.base + path
        return replace(self._template, method=method, url=url, headers=headers, body=body)

    def url_of(self, batch_id: str) -> str:
        raise NotImplementedError


class OpenAIBatches(BatchWire):
    api = "openai"
    max_requests = 50_000
    max_bytes = 200 * 2**20
    uploads = True

    def upload(self, content: bytes) -> HttpRequest:
        boundary = f"promptlab{secrets.token_hex(8)}"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
                f'batch\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="batch.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n').encode()
        body = head + content + f"\r\n--{boundary}--\r\n".encode()
        return self._request("POST", "/files", body, f"multipart/form-data; boundary={boundary}")

    def file_id(self, body: bytes) -> str:
        return str(_json(body, "OpenAI file upload")["id"])

    def create(self, lines: list[bytes], file_id: str | None, run_id: str,
               number: int) -> HttpRequest:
        """The batch, tagged with the run and its number there: after a crash between the
        server accepting it and the database hearing of it, `find` finds it again."""
        return self._request("POST", "/batches", dumps({
            "input_file_id": file_id, "endpoint": batch_endpoint(self.model),
            "completion_window": "24h",
            "metadata": {"promptlab_run": run_id, "promptlab_batch": str(number)}}),
            "application/json")

    def listing(self, after: str | None) -> HttpRequest:
        return self._request("GET", "/batches?limit=100" + (f"&after={after}" if after else ""))

    def find(self, body: bytes, run_id: str, number: int, count: int, known: frozenset[str],
             since: datetime) -> tuple[BatchState | None, str | None]:
        """A page of the listing: the batch created for (run, number), if there, and the
        cursor of the next page (None: no more pages)."""
        data = _json(body, "OpenAI batch list")
        page = [b for b in data.get("data") or [] if isinstance(b, dict)]
        for b in page:
            meta = b.get("metadata") or {}
            if (isinstance(meta, dict) and meta.get("promptlab_run") == run_id
                    and meta.get("promptlab_batch") == str(number)):
                return self.state(dumps(b)), None
        more = bool(data.get("has_more")) and page
        return None, str(page[-1].get("id")) if more else None

    def poll(self, batch_id: str) -> HttpRequest:
        return self._request("GET", f"/batches/{batch_id}")

    def cancel(self, batch_id: str) -> HttpRequest:
        return self._request("POST", f"/batches/{batch_id}/cancel", b"{}", "application/json")

    def state(self, body: bytes) -> BatchState:
        data = _json(body, "OpenAI batch")
        counts = data.get("request_counts") or {}
        status = str(data.get("status"))
        errors = data.get("errors")
        error = None
        if isinstance(errors, dict) and errors.get("data"):
            error = "; ".join(str(e.get("message")) for e in errors["data"]
                              if isinstance(e, dict))
        return BatchState(str(data["id"]), status, status in OPENAI_ENDED,
                          int(counts.get("completed") or 0), int(counts.get("failed") or 0),
                          data.get("output_file_id"), data.get("error_file_id"), None, error)

    def results(self, state: BatchState) -> list[HttpRequest]:
        return [self._request("GET", f"/files/{f}/content")
                for f in (state.output_file_id, state.error_file_id) if f]

    def url_of(self, batch_id: str) -> str:
        return f"{self.base}/batches/{batch_id}"


class AnthropicBatches(BatchWire):
    api = "anthropic"
    max_requests = 100_000
    max_bytes = 256 * 2**20

    def create(self, lines: list[bytes], file_id: str | None, run_id: str,
               number: int) -> HttpRequest:
        body = b'{"requests":[' + b",".join(lines) + b"]}"
        return self._request("POST", "/messages/batches", body, "application/json")

    def listing(self, after: str | None) -> HttpRequest:
        return self._request("GET", "/messages/batches?limit=100"
                             + (f"&after_id={after}" if after else ""))

    def find(self, body: bytes, run_id: str, number: int, count: int, known: frozenset[str],
             since: datetime) -> tuple[BatchState | None, str | None]:
        """A page of the listing (newest first): a Message Batch carries no metadata of
        ours, so the batch is the oldest one created since `since` (when its row was
        written, less a minute of clock skew) that holds as many requests and that the
        database does not know; the cursor of the next page, or None."""
        data = _json(body, "Anthropic message batch list")
        page = [b for b in data.get("data") or [] if isinstance(b, dict)]
        found = None
        for b in page:
            created = _when(b.get("created_at"))
            if created is None or created < since - timedelta(minutes=1):
                return found, None
            counts = b.get("request_counts") or {}
            total = sum(int(v or 0) for v in counts.values()) if isinstance(counts, dict) \
                else -1
            if total == count and str(b.get("id")) not in known:
                found = self.state(dumps(b))
        more = bool(data.get("has_more")) and page
        return found, str(page[-1].get("id")) if more and found is None else None

    def poll(self, batch_id: str) -> HttpRequest:
        return self._request("GET", f"/messages/batches/{batch_id}")

    def cancel(self, batch_id: str) -> HttpRequest:
        return self._request("POST", f"/messages/batches/{batch_id}/cancel", b"",
                             "application/json")

    def state(self, body: bytes) -> BatchState:
        data = _json(body, "Anthropic message batch")
        counts = data.get("request_counts") or {}
        failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
        status = str(data.get("processing_status"))
        return BatchState(str(data["id"]), status, status == "ended",
                          int(counts.get("succeeded") or 0), failed, None, None,
                          data.get("results_url"))

    def results(self, state: BatchState) -> list[HttpRequest]:
        url = state.results_url or f"{self.base}/messages/batches/{state.batch_id}/results"
        return [self._request("GET", url)]

    def url_of(self, batch_id: str) -> str:
        return f"{self.base}/messages/batches/{batch_id}"


def batch_endpoint(model: ModelSpec) -> str:
    """The OpenAI endpoint a model's batch lines go to."""
    return {"completions": "/v1/completions", "responses": "/v1/responses"}.get(
        model.endpoint, "/v1/chat/completions")


def _when(value: object) -> datetime | None:
    """An ISO 8601 time as naive UTC (the database's times), or None."""
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def wire_for(api: str, model: ModelSpec, template: HttpRequest,
             default_base_url: str) -> OpenAIBatches | AnthropicBatches:
    cls = OpenAIBatches if api == "openai" else AnthropicBatches
    return cls(model, template, default_base_url)
