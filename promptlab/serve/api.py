"""The REST API under /api: JSON both ways, keyset cursors, errors as ``{"error": ...}``
with the CLI's one-line messages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field

from promptlab.serve.context import Context
from promptlab.serve.views import (
    check_dims,
    compare_json,
    decode_cursor,
    encode_cursor,
    parse_date,
    run_json,
    swept,
    trial_filter,
)

__all__ = ["api_router"]

RunId = Annotated[str, Path(min_length=1, max_length=64, description="run id, prefix or latest")]
TrialIdx = Annotated[int, Path(ge=0, le=2**53)]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class Launch(BaseModel):
    overrides: list[Annotated[str, Field(max_length=2000)]] = Field(default=[], max_length=200)


class Rating(BaseModel):
    rating: Literal["up", "down"]
    comment: str = Field(default="", max_length=5000)


class ErrorBody(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 415, 421, 422)}


def api_router(ctx: Context) -> APIRouter:
    api = APIRouter(prefix="/api", responses=ERRORS)

    @api.get("/runs", response_model=Page, summary="runs, newest first")
    def runs(name: str | None = None, status: str | None = None, sweep: str | None = None,
             search: str | None = None, since: str | None = None,
             cursor: str | None = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Page:
        infos, nxt = ctx.store.runs_page(
            name=name, status=status, sweep=sweep, search=search,
            since=parse_date(since), before=decode_cursor(cursor, "run"), limit=limit)
        return Page(items=[run_json(i) for i in infos], next_cursor=encode_cursor(nxt))

    @api.get("/runs/{run_id}", summary="a run: provenance, counts, config")
    def run(run_id: RunId) -> dict[str, Any]:
        info = ctx.info(run_id)
        statuses, attempts, cached = ctx.store.status_counts(info.id)
        return {**run_json(info, full=True), "statuses": statuses, "attempts": attempts,
                "cached": cached, "scorers": ctx.store.scorer_names(info.id)}

    @api.get("/runs/{run_id}/report", summary="the numbers of promptlab report")
    def report(run_id: RunId, by: Annotated[str, Query(max_length=500)] = "model,prompt"
               ) -> dict[str, Any]:
        info = ctx.info(run_id)
        return ctx.reports.report(ctx.store, info, check_dims(info, by))

    @api.get("/runs/{run_id}/trials", response_model=Page, summary="a page of trials")
    def trials(run_id: RunId, model: str | None = None, prompt: str | None = None,
               param: Annotated[list[str] | None, Query(description="NAME=VALUE")] = None,
               row: str | None = None, scorer: str | None = None,
               passed: Literal["true", "false"] | None = None,
               q: Annotated[str | None, Query(description="text in the output")] = None,
               differ: Annotated[bool, Query(description="only outputs that differ across "
                                                          "models")] = False,
               order: Literal["idx", "row"] = "idx", cursor: str | None = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Page:
        info = ctx.info(run_id)
        f = trial_filter(model=model, prompt=prompt, param=param, row=row, scorer=scorer,
                         passed=passed, q=q, differ=differ)
        items, nxt = ctx.store.trials_page(
            info.id, f, swept=swept(info), by_row=order == "row",
            after=decode_cursor(cursor, order), limit=limit)
        return Page(items=items, next_cursor=encode_cursor(nxt))

    @api.get("/runs/{run_id}/trials/{idx}", summary="a trial: every attempt, redacted")
    def trial(run_id: RunId, idx: TrialIdx) -> dict[str, Any]:
        info = ctx.info(run_id)
        detail = ctx.store.trial_detail(info.id, str(idx))
        return {**detail, **ctx.store.trial_record(info.id, idx)}

    @api.get("/compare", summary="the numbers of promptlab compare")
    def compare(run: Annotated[str, Query(min_length=1, max_length=64)],
                run_b: Annotated[str | None, Query(max_length=64)] = None,
                between: Annotated[str | None, Query(max_length=500)] = None,
                and_: Annotated[str | None, Query(alias="and", max_length=500)] = None,
                scorer: str | None = None) -> dict[str, Any]:
        return compare_json(ctx.store, run, run_b, between, and_, scorer)

    @api.post("/runs", status_code=202, summary="launch an experiment with overrides")
    def launch(body: Launch, response: Response) -> dict[str, Any]:
        run_id = ctx.launcher.launch(body.overrides)
        response.headers["Location"] = f"/api/runs/{run_id}"
        return run_json(ctx.store.run(run_id))

    @api.delete("/runs/{run_id}", summary="delete a run and its rows (409 while it runs)")
    def delete(run_id: RunId) -> dict[str, Any]:
        info = ctx.info(run_id)
        ctx.store.check_free(info.id)
        return {"deleted": ctx.store.delete_run(info.id)}

    @api.put("/runs/{run_id}/trials/{idx}/rating", summary="a person's rating: scorer human")
    def rate(run_id: RunId, idx: TrialIdx, body: Annotated[Rating, Body()]) -> dict[str, Any]:
        info = ctx.info(run_id)
        return ctx.store.rate(info.id, idx, up=body.rating == "up", comment=body.comment)

    @api.delete("/runs/{run_id}/trials/{idx}/rating", summary="remove a rating")
    def unrate(run_id: RunId, idx: TrialIdx) -> dict[str, Any]:
        info = ctx.info(run_id)
        return {"deleted": ctx.store.unrate(info.id, idx)}

    return api
