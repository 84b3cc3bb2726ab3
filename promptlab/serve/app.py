"""The ASGI application of `promptlab serve`: the API, the pages, the static helper.

FastAPI gives the OpenAPI document (/openapi.json) from the same signatures that validate
requests; its interactive docs are off (they load scripts from a CDN, which the CSP
forbids and a machine without internet cannot fetch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response

from promptlab import __version__
from promptlab.errors import UserError
from promptlab.serve.api import api_router
from promptlab.serve.context import Context
from promptlab.serve.launcher import Launcher
from promptlab.serve.pages import page_router, render_error
from promptlab.serve.security import Guard

__all__ = ["ServeSettings", "create_app"]


@dataclass(frozen=True)
class ServeSettings:
    db: str | None = None
    experiments: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8321
    token: str = ""
    read_only: bool = False


def _status(exc: UserError) -> int:
    from promptlab.store.ownership import RunStillRunning

    if isinstance(exc, RunStillRunning):
        return 409
    return 404 if " not found" in str(exc) else 400


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/openapi"))


def _error(request: Request, status: int, message: str) -> Response:
    if _is_api(request):
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(render_error(status, message), status_code=status)


def _validation_line(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(settings: ServeSettings) -> FastAPI:
    """The application over `settings.db` (opened read-only with `read_only`)."""
    from promptlab.store import Store

    # A mistyped --db is refused, not served empty; with --experiments the viewer can
    # launch runs, so a new database is made for them.
    store = Store.open(settings.db, read_only=settings.read_only,
                       must_exist=settings.experiments is None)
    ctx = Context(store=store, launcher=Launcher(store.url, settings.experiments),
                  read_only=settings.read_only)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="promptlab", version=__version__, docs_url=None, redoc_url=None,
                  lifespan=lifespan,
                  openapi_url="/openapi.json",
                  description="Runs, reports, trials, comparisons and ratings of a promptlab "
                              "results database.")
    app.state.ctx = ctx
    app.middleware("http")(Guard(settings.host, settings.token, settings.read_only))

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> Response:
        return _error(request, _status(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _validation_line(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _error(request, exc.status_code, message)

    app.include_router(api_router(ctx))
    app.include_router(page_router(ctx))

    return app
