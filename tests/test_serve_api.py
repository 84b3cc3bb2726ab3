"""promptlab serve's REST API against a real server on 127.0.0.1: the same numbers as the
CLI, cursors, filters, launch, delete, ratings as the scorer `human`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_support import TOKEN, Server, copy_db, serving, template_db

from promptlab.cli import main

pytest.importorskip("fastapi")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    with template_db(tmp_path_factory.mktemp("serve-api")) as made:
        yield made


@pytest.fixture
def served(template: tuple[Path, Path, str], tmp_path: Path
           ) -> Iterator[tuple[Server, str, Path]]:
    project, template_path, run_id = template
    db = copy_db(template_path, tmp_path / "r.db")
    with serving(db, experiments=project / "experiments") as server:
        yield server, run_id, db


def test_report_and_compare_give_the_numbers_of_the_cli(
        served: tuple[Server, str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    server, run_id, db = served
    with server.client() as c:
        report = c.get(f"/api/runs/{run_id[:10]}/report", params={"by": "model,temperature"})
        compared = c.get("/api/compare", params={"run": run_id, "between": "model=oa",
                                                 "and": "model=ob"})
    capsys.readouterr()
    assert main(["report", run_id, "--db", str(db), "--by", "model,temperature",
                 "--format", "json"]) == 0
    assert report.json() == json.loads(capsys.readouterr().out)
    assert main(["compare", run_id, "--db", str(db), "--between", "model=oa", "--and",
                 "model=ob", "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    [ours], [theirs] = compared.json()["comparisons"], cli["comparisons"]
    assert {k: ours[k] for k in ("pairs", "a_value", "b_value", "diff", "p_value", "verdict")} \
        == {k: theirs[k] for k in ("pairs", "a_value", "b_value", "diff", "p_value", "verdict")}


def test_trials_page_by_cursor_and_filters(served: tuple[Server, str, Path]) -> None:
    server, run_id, _ = served
    seen, cursor = [], None
    with server.client() as c:
        for _ in range(10):
            page = c.get(f"/api/runs/{run_id}/trials", params={"limit": 10, **(
                {"cursor": cursor} if cursor else {})}).json()
            seen += [t["idx"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(24))  # 2 models x 2 prompts x 2 temperatures x 3 rows
        only = c.get(f"/api/runs/{run_id}/trials", params={
            "model": "ob", "prompt": "plain", "param": "temperature=1", "row": "de"}).json()
        assert [(t["model"], t["prompt"], t["params"]["temperature"], t["row_id"])
                for t in only["items"]] == [("ob", "plain", 1.0, "de")]
        failed = c.get(f"/api/runs/{run_id}/trials",
                       params={"scorer": "named", "passed": "false"}).json()["items"]
        assert failed and {t["row_id"] for t in failed} == {"jp"}
        found = c.get(f"/api/runs/{run_id}/trials", params={"q": "GERMANY"}).json()["items"]
        assert found and all("germany" in t["output"].lower() for t in found)
        differ = c.get(f"/api/runs/{run_id}/trials", params={"differ": "true"}).json()["items"]
        by_item: dict[tuple[str, str, float], set[str]] = {}
        for t in differ:
            by_item.setdefault((t["prompt"], t["row_id"], t["params"]["temperature"]),
                               set()).add(t["output"])
        assert differ and all(len(outputs) == 2 for outputs in by_item.values())
        bad = c.get(f"/api/runs/{run_id}/trials", params={"cursor": "!!nope"})
        assert bad.status_code == 400 and "cursor" in bad.json()["error"]


def test_a_trial_has_every_attempt_and_no_secret(served: tuple[Server, str, Path]) -> None:
    server, run_id, _ = served
    with server.client() as c:
        trial = c.get(f"/api/runs/{run_id}/trials/0").json()
        missing = c.get(f"/api/runs/{run_id}/trials/9999")
    assert trial["attempts"][0]["request"]["url"].endswith("/v1/chat/completions")
    assert trial["result"]["status"] == "ok" and trial["scores"]["named"]["passed"] is True
    assert missing.status_code == 404 and "trial '9999' not found" in missing.json()["error"]


def test_a_rating_is_the_scorer_human_in_report_compare_and_export(
        served: tuple[Server, str, Path], tmp_path: Path) -> None:
    server, run_id, db = served
    with server.client(headers=AUTH) as c:
        for t in c.get(f"/api/runs/{run_id}/trials", params={"limit": 500}).json()["items"]:
            r = c.put(f"/api/runs/{run_id}/trials/{t['idx']}/rating",
                      json={"rating": "up" if t["model"] == "oa" else "down",
                            "comment": f"look at #{t['idx']}"})
            assert r.status_code == 200, r.text
        report = c.get(f"/api/runs/{run_id}/report", params={"by": "model"}).json()
        compared = c.get("/api/compare", params={"run": run_id, "between": "model=oa",
                                                 "and": "model=ob", "scorer": "human"}).json()
        bad = c.put(f"/api/runs/{run_id}/trials/0/rating", json={"rating": "meh"})
    assert [(g["model"], g["human"]) for g in report["groups"]] == [("oa", 1.0), ("ob", 0.0)]
    [human] = compared["comparisons"]
    assert human["pairs"] == 12 and human["wins"] == 12 and human["flipped_count"] == 12
    assert bad.status_code == 422 and "rating" in bad.json()["error"]
    out = tmp_path / "export.jsonl"
    assert main(["export", run_id, "--db", str(db), "-o", str(out)]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert first["scores"]["human"]["detail"]["comment"] == "look at #0"


def test_launch_runs_in_the_background_and_delete_waits_for_the_end(
        served: tuple[Server, str, Path]) -> None:
    server, _, _ = served
    with server.client(headers=AUTH) as c:
        wrong = c.post("/api/runs", json={"overrides": ["nosuchkey=1"]})
        assert wrong.status_code == 400 and "nosuchkey" in wrong.json()["error"]
        started = c.post("/api/runs", json={"overrides": ["grid.params.temperature=[0.5]"]})
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        deadline = time.monotonic() + 30
        while (run := c.get(location).json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert run["status"] == "completed" and run["done"] == run["planned"] == 12
        assert c.delete(location).json()["deleted"] == [run["id"]]
        assert c.get(location).status_code == 404


def test_delete_of_a_running_run_is_409(served: tuple[Server, str, Path]) -> None:
    server, run_id, db = served
    from promptlab.store import Store

    with Store.open(str(db)) as store:  # this process owns it, with a fresh heartbeat
        store.claim(run_id)
        store.set_status(run_id, "running")
    with server.client(headers=AUTH) as c:
        r = c.delete(f"/api/runs/{run_id}")
        assert r.status_code == 409 and "still running" in r.json()["error"]
        assert c.get(f"/api/runs/{run_id}").json()["status"] == "running"
