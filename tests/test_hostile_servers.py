"""Servers that answer with hostility (found by an adversarial review): each becomes a
recorded error or a clean result, never a crash, never a leaked key, in bounded time."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from promptlab.cli import main
from promptlab.servers.managed import free_port

KEY = "sk-hostile-KEY-7781"


class Hostile:
    """An aiohttp app on 127.0.0.1 whose behaviour is chosen by the first path segment."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        self.seen.append((mode, {k.lower(): v for k, v in request.headers.items()}))
        if mode == "redirect":
            raise web.HTTPTemporaryRedirect(f"http://localhost:{self.port}/echo/v1/x")
        if mode == "echo":
            return web.json_response({"model": "m", "choices": [{"message": {
                "content": json.dumps(dict(request.headers))}, "finish_reason": "stop"}]})
        if mode == "hugeline":
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b'data: {"choices":[{"delta":{"content":"' + b"a" * 2_000_000
                             + b'"}}]}\n\n')
            return resp
        if mode == "huge":
            body = b'{"model": "m", "choices": [{"message": {"content": "' + (
                b"z" * (70 * 1024 * 1024)) + b'"}}]}'
            return web.Response(body=body, content_type="application/json")
        return web.json_response({"model": "m", "choices": [{"message": {"content": "ok"},
                                                             "finish_reason": "stop"}]})

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{mode}/{tail:.*}", self._handle)
        self._runner = runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> Hostile:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with Hostile() as server:
        yield server


def _run(project: Path, monkeypatch: pytest.MonkeyPatch, base_url: str, *extra: str) -> int:
    monkeypatch.chdir(project)
    monkeypatch.setenv("PROMPTLAB_TEST_OA_KEY", KEY)
    return main(["run", "--db", "h.db", "models=[oa]", "prompts=[plain]",
                 "grid.params.temperature=[0]", "grid.params.top_p=[1]", "run.max_attempts=1",
                 f"models.oa.base_url='{base_url}'", *extra])


def _db_text(project: Path) -> str:
    with sqlite3.connect(project / "h.db") as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return "\n".join(str(v) for t in tables for row in conn.execute(f'select * from "{t}"')
                         for v in row)


def test_a_redirect_is_not_followed_so_the_key_stays_home(
        project: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(project, monkeypatch, f"http://127.0.0.1:{hostile.port}/redirect/v1") == 1
    assert [mode for mode, _ in hostile.seen] == ["redirect"] * 3  # never the echo target
    with sqlite3.connect(project / "h.db") as conn:
        errors = {e for (e,) in conn.execute("select error from results")}
    assert all("redirect to" in str(e) and "not followed" in str(e) for e in errors)


def test_a_server_echoing_the_key_does_not_put_it_in_the_database(
        project: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{hostile.port}/echo/v1?key={KEY}"
    assert _run(project, monkeypatch, url, "models.oa.secret_params=[key]") == 0
    assert hostile.seen and KEY in hostile.seen[0][1]["authorization"]  # it was sent ...
    assert KEY not in _db_text(project)  # ... and stored nowhere: output, endpoint, url
    assert main(["export", "--db", "h.db"]) == 0
    assert KEY not in capsys.readouterr().out


def test_an_event_line_over_the_clients_limit_is_a_recorded_error(
        project: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    code = _run(project, monkeypatch, f"http://127.0.0.1:{hostile.port}/hugeline/v1",
                "models.oa.stream=true")
    assert code == 1
    with sqlite3.connect(project / "h.db") as conn:
        rows = conn.execute("select status, error_kind from results").fetchall()
    assert rows and {s for s, _ in rows} == {"error"}


def test_a_reply_over_the_size_limit_is_a_recorded_error(
        project: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(project, monkeypatch, f"http://127.0.0.1:{hostile.port}/huge/v1") == 1
    with sqlite3.connect(project / "h.db") as conn:
        errors = [e for (e,) in conn.execute("select error from results")]
    assert errors and all("64 MB" in str(e) for e in errors)
    assert (project / "h.db").stat().st_size < 5 * 1024 * 1024
