"""The pages: server-rendered HTML (Jinja2, autoescaped) over the same reads as the API.

Every value from the database (outputs, run names, params, dataset values) reaches the
page through Jinja2's autoescaping and nowhere else: no ``|safe`` on stored text, no
stored text in a URL but as an encoded query value or path segment. The view state (the
report's dimensions, the filters, the page) is the URL's query, so a link can be shared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse, Response

from promptlab.errors import UserError
from promptlab.serve.context import Context
from promptlab.serve.views import (
    check_dims,
    compare_json,
    decode_cursor,
    encode_cursor,
    facets,
    swept,
    trial_filter,
    word_diff,
)

__all__ = ["page_router", "render_error"]

HERE = Path(__file__).parent
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        text: str = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pretty=_pretty, num=_num, seg=lambda s: quote(str(s), safe=""),
                       shown=lambda v: v if isinstance(v, str) else json.dumps(v))
    return env


ENV = _env()


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)


def render_error(status: int, message: str) -> str:
    return render("error.html.j2", status=status, message=message, title=f"error {status}")


def _page(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(name, **context))


def _link(path: str, params: dict[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for k, v in params.items():
        if v is None or v == "" or v is False:
            continue
        for item in v if isinstance(v, list) else [v]:
            pairs.append((k, "1" if item is True else str(item)))
    return path + ("?" + urlencode(pairs) if pairs else "")


def _cell_class(scores: dict[str, dict[str, Any]]) -> str:
    passed = [s["passed"] for s in scores.values() if s["passed"] is not None]
    if not passed:
        return "none"
    return "pass" if all(passed) else ("fail" if not any(passed) else "mixed")


def matrix(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A page of trials as rows (dataset row, repeat) x columns (model, prompt, params)."""
    columns: dict[str, dict[str, Any]] = {}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for t in items:
        label = " · ".join([t["model"], t["prompt"], *(
            f"{k}={v if isinstance(v, str) else json.dumps(v)}"
            for k, v in sorted(t["params"].items()))])
        columns.setdefault(label, {"label": label, "model": t["model"]})
        row = rows.setdefault((t["row_id"], t["repeat"]), {"row_id": t["row_id"],
                                                           "repeat": t["repeat"], "cells": {}})
        row["cells"][label] = {**t, "css": _cell_class(t["scores"])}
    return {"columns": sorted(columns), "rows": list(rows.values())}


def page_router(ctx: Context) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    @pages.get("/static/{name}")
    def static(name: str) -> Response:
        kind = STATIC.get(name)  # a fixed list: no path from the URL reaches the disk
        if kind is None:
            raise UserError(f"static file '{name}' not found")
        return Response((HERE / "static" / name).read_bytes(), media_type=kind,
                        headers={"Cache-Control": "max-age=300"})

    @pages.get("/", response_class=HTMLResponse)
    def runs(search: str | None = None, status: str | None = None,
             cursor: str | None = None) -> HTMLResponse:
        infos, nxt = ctx.store.runs_page(search=search, status=status,
                                         before=decode_cursor(cursor, "run"), limit=50)
        more = _link("/", {"search": search, "status": status, "cursor": encode_cursor(nxt)})
        return _page("runs.html.j2", title="runs", runs=infos, search=search or "",
                     status=status or "", next_link=more if nxt else None)

    @pages.get("/runs/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: str, by: str = "model,prompt",
            model: str | None = None, prompt: str | None = None,
            param: Annotated[list[str] | None, Query()] = None, row: str | None = None,
            scorer: str | None = None, passed: str | None = None, q: str | None = None,
            differ: bool = False, cursor: str | None = None) -> HTMLResponse:
        info = ctx.info(run_id)
        dims = check_dims(info, by)
        report = ctx.reports.report(ctx.store, info, dims)
        f = trial_filter(model=model, prompt=prompt, param=param, row=row, scorer=scorer,
                         passed=passed, q=q, differ=differ)
        items, nxt = ctx.store.trials_page(info.id, f, swept=swept(info), by_row=True,
                                           after=decode_cursor(cursor, "row"), limit=100)
        state = {"by": by if by != "model,prompt" else None, "model": model,
                 "prompt": prompt, "param": [p for p in param or [] if p], "row": row,
                 "scorer": scorer, "passed": passed, "q": q, "differ": differ}
        chosen = dict(p.partition("=")[::2] for p in param or [])
        return _page("run.html.j2", title=f"run {info.name}", info=info, report=report,
                     dims=dims, facets=facets(info, report["scorers"]), state=state,
                     chosen=chosen, matrix=matrix(items), read_only=ctx.read_only,
                     next_link=_link(f"/runs/{quote(info.id, safe='')}",
                                     {**state, "cursor": encode_cursor(nxt)}) if nxt else None,
                     this_link=str(request.url.path))

    @pages.get("/runs/{run_id}/trials/{idx}", response_class=HTMLResponse)
    def trial(run_id: str, idx: int) -> HTMLResponse:
        info = ctx.info(run_id)
        detail = ctx.store.trial_detail(info.id, str(idx))
        record = ctx.store.trial_record(info.id, idx)
        return _page("trial.html.j2", title=f"trial {idx} of {info.name}", info=info,
                     t=detail, r=record, read_only=ctx.read_only)

    @pages.get("/compare", response_class=HTMLResponse)
    def compare(run: str | None = None, run_b: str | None = None,
                between: str | None = None, and_: Annotated[str | None, Query(alias="and")]
                = None, scorer: str | None = None) -> HTMLResponse:
        form = {"run": run or "", "run_b": run_b or "", "between": between or "",
                "and": and_ or "", "scorer": scorer or ""}
        if not run:
            return _page("compare.html.j2", title="compare", form=form, result=None)
        result = compare_json(ctx.store, run, run_b, between, and_, scorer)
        for c in result["comparisons"]:
            for f in c["flipped"]:
                f["diff"] = word_diff(f["a_output"] or "", f["b_output"] or "")
        return _page("compare.html.j2", title="compare", form=form, result=result)

    return pages
