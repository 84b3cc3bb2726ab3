"""Streaming assembles exactly what the plain call returns, and times the first token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import prepared_for

from promptlab.cli import main
from promptlab.testing import MockConfig, MockServer

BASE = ["prompts=[plain,fewshot]", "grid.params.top_p=[1]"]


def outputs(db: Path) -> dict[tuple[object, ...], tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select t.model_alias, t.prompt, t.params_json, t.row_id, r.output, "
            "r.input_tokens, r.output_tokens, r.finish_reason, r.response_model "
            "from trials t join results r using (run_id, idx)").fetchall()
    return {r[:4]: r[4:] for r in rows}


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_streamed_results_equal_plain_ones(project: Path, mock_server: MockServer,
                                           monkeypatch: pytest.MonkeyPatch,
                                           endpoint: str) -> None:
    monkeypatch.chdir(project)
    args = [*BASE, f"models.oa.endpoint={endpoint}"]
    assert main(["run", "--db", "plain.db", *args, "run.cache=off"]) == 0
    assert main(["run", "--db", "stream.db", *args, "models.oa.stream=true",
                 "models.an.stream=true", "run.cache=off"]) == 0
    plain, streamed = outputs(project / "plain.db"), outputs(project / "stream.db")
    assert len(plain) == 2 * 2 * 2 * 3
    assert streamed == plain
    with sqlite3.connect(project / "stream.db") as conn:
        timed = conn.execute("select count(*) from results where ttft_ms > 0 "
                             "and ttft_ms <= latency_ms and tokens_per_s > 0").fetchone()[0]
        bodies = conn.execute("select response_body from attempts").fetchall()
    assert timed == 24
    assert all("data:" in b[0] for b in bodies)  # the raw stream is the record
    paths = {r["path"] for r in mock_server.state.requests}
    expected = "/v1/completions" if endpoint == "completions" else "/v1/chat/completions"
    assert paths == {expected, "/v1/messages"}


def test_report_shows_time_to_first_token(project: Path, mock_server: MockServer,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--db", "s.db", *BASE, "models.oa.stream=true"]) == 0
    capsys.readouterr()
    assert main(["report", "--db", "s.db", "--format", "json", "--by", "model"]) == 0
    import json

    groups = {g["model"]: g for g in json.loads(capsys.readouterr().out)["groups"]}
    assert groups["oa"]["ttft_p50_ms"] > 0 and groups["oa"]["ttft_p95_ms"] >= groups["oa"][
        "ttft_p50_ms"]
    assert groups["an"]["ttft_p50_ms"] is None  # not streamed


def test_mid_stream_errors_are_classified_and_retried(tmp_path: Path, project: Path) -> None:
    import asyncio

    from promptlab.runner.session import NewRun, Session
    from promptlab.store import Store

    with MockServer(MockConfig(faults={"midstream": 0.4}, seed=3)) as server:
        url = server.url + "/v1"
        prepared = prepared_for(project, *BASE, "grid.repeats=4", "models.oa.stream=true",
                                "models.an.stream=true", "run.max_attempts=15",
                                f"models.oa.base_url={url}", f"models.an.base_url={url}")
        store = Store.open(str(tmp_path / "m.db"))

        async def no_wait(_: float) -> None:
            await asyncio.sleep(0)

        stats = Session(store, prepared.spec, prepared.renderer, sleep=no_wait).run(
            NewRun(config={}), "m").stats
        faults = server.state.counts["fault:midstream"]
    assert stats.ok == 96 and stats.errors == 0
    with sqlite3.connect(tmp_path / "m.db") as conn:
        kinds = dict(conn.execute("select t.provider || ':' || a.error_kind, count(*) "
                                  "from attempts a join trials t using (run_id, idx) "
                                  "where a.error_kind is not null group by 1"))
    # Anthropic's overloaded_error event backs off like a rate limit; a dropped OpenAI
    # stream is transient.
    assert set(kinds) == {"anthropic:rate_limit", "openai:transient"}
    assert sum(kinds.values()) == faults > 10
