"""Repeats as one call with n samples, where the API honours n."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from helpers import run_with

from promptlab.cli import main
from promptlab.testing import MockServer

ARGS = ["models=[oa]", "prompts=[plain]", "grid.params.temperature=[0.8]",
        "grid.params.top_p=[1]", "grid.repeats=3", "models.oa.repeats_as_n=true"]


def test_repeats_go_out_as_one_call_with_n(project: Path, mock_server: MockServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--db", "n.db", *ARGS]) == 0
    bodies = [json.loads(r["body"]) for r in mock_server.state.requests]
    assert len(bodies) == 3 and all(b["n"] == 3 for b in bodies)
    with sqlite3.connect(project / "n.db") as conn:
        rows = conn.execute("select t.row_id, t.repeat, r.status, r.output, r.attempts, "
                            "r.cache_source from trials t join results r using (run_id, idx) "
                            "order by t.idx").fetchall()
        attempts = conn.execute("select count(*) from attempts").fetchone()[0]
    assert len(rows) == 9 and {r[2] for r in rows} == {"ok"} and attempts == 3
    for row_id in ("fr", "de", "jp"):
        samples = [r for r in rows if r[0] == row_id]
        assert [r[1] for r in samples] == [0, 1, 2]
        assert len({r[3] for r in samples}) == 3  # three different samples
        assert samples[0][4] == 1 and samples[1][4] == 0
        assert samples[1][5].startswith("n-sample of ")
    # Each sample is cached under its own repeat: a second run sends nothing.
    assert main(["run", "--db", "n.db", *ARGS]) == 0
    assert mock_server.request_count == 3


def one_choice(seen: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    """A server that ignores n: one choice a request (the bodies go into `seen`)."""
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"model": "m", "choices": [
            {"index": 0, "message": {"content": f"s{len(seen)}"}, "finish_reason": "stop"}]})
    return handler


def test_a_server_that_ignores_n_gets_the_rest_one_by_one(project: Path) -> None:
    seen: list[dict[str, object]] = []
    stats, _ = run_with(project, one_choice(seen), *ARGS, "dataset.limit=1")
    assert stats.ok == 3
    assert [b.get("n") for b in seen] == [3, None, None]


def test_samples_asked_one_by_one_count_against_run_max_calls(project: Path) -> None:
    """Each is a request: they went out past the budget (10 requests under max_calls=2)."""
    seen: list[dict[str, object]] = []
    stats, _ = run_with(project, one_choice(seen), *ARGS, "run.max_calls=2")
    assert len(seen) == 2 == stats.calls
    assert stats.ok == 2 and stats.budget_stop == "run.max_calls=2 reached"
