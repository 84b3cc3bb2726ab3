"""`promptlab search`: Optuna over real runs against the mock server on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_search_support import PEAK, add_to_model, write_search

from promptlab.cli.main import main
from promptlab.store import Store
from promptlab.testing import MockServer


def _report(db: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["report", "--search", "latest", "--db", db, *args]) == 0
    return capsys.readouterr().out


def test_fifteen_trials_find_the_peak_temperature(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    write_search(project)
    assert main(["search", "+experiment=search", "--db", "s.db"]) == 0
    report = json.loads(_report("s.db", capsys, "--format", "json"))
    assert len(report["trials"]) == 15
    assert all(t["state"] == "complete" for t in report["trials"])
    best = report["best"]
    assert abs(best["params"]["grid.params.temperature"] - PEAK) <= 0.1
    assert best["objective"] == "peak" and best["kind"] == "mean" and best["n"] == 3
    assert best["value"] == pytest.approx(max(t["values"][0] for t in report["trials"]))
    with Store.open("s.db") as store:
        info = store.search(report["search_id"])
        runs = {t.run_id for t in store.search_trials(info.id)}
        assert len(runs) == 15 and all(store.run(r).status == "completed" for r in runs)
    # Reproducible from the database: the space, the sampler and its seed, every point.
    assert info.spec["params"][0]["key"] == "grid.params.temperature"
    assert (info.sampler, info.seed) == ("tpe", 3)
    assert info.config["search"]["trials"] == 15
    assert mock_server.request_count == 45  # 15 runs x 3 rows, every one recorded once

    table = _report("s.db", capsys)
    assert "best: trial" in table and "95% CI" in table
    markdown = _report("s.db", capsys, "--format", "markdown")
    assert markdown.count("| complete |") == 15
    csv_text = _report("s.db", capsys, "--format", "csv")
    assert csv_text.splitlines()[0] == "trial,state,peak,params,run"
    capsys.readouterr()
    assert main(["runs", "--search", report["search_id"][:10], "--db", "s.db"]) == 0
    assert capsys.readouterr().out.count(report["search_id"]) == 15


def test_a_repeated_point_is_answered_by_the_cache(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    add_to_model(project, "price:\n  input_per_mtok: 1000\n  output_per_mtok: 2000\n")
    write_search(project, """
        params:
          grid.params.temperature: choice(0.5, 0.7)
        objective: [peak, cost_usd]
        direction: [maximize, minimize]
        trials: 6
        sampler: random
        seed: 1
    """)
    assert main(["search", "+experiment=search", "--db", "c.db"]) == 0
    assert mock_server.request_count == 6  # two points x 3 rows; the rest cache hits
    with sqlite3.connect("c.db") as conn:
        trials = conn.execute("select params_json, values_json, state from search_trials"
                              ).fetchall()
        hits = conn.execute("select count(*) from results where cache_hit").fetchone()[0]
    assert [s for _, _, s in trials] == ["complete"] * 6 and hits == 12
    # A point the cache answered costs what the point cost when it was sent, not nothing.
    by_point: dict[str, set[tuple[float, ...]]] = {}
    for params, values, _ in trials:
        by_point.setdefault(params, set()).add(tuple(json.loads(values)))
    assert len(by_point) == 2
    assert all(len(v) == 1 and next(iter(v))[1] > 0 for v in by_point.values())


def test_two_objectives_give_the_pareto_front(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    write_search(project, """
        params:
          grid.params.temperature: interval(0.0, 1.2)
        objective: [peak, cool]
        direction: [maximize, maximize]
        trials: 8
        sampler: random
        seed: 5
    """)
    assert main(["search", "+experiment=search", "--db", "p.db"]) == 0
    report = json.loads(_report("p.db", capsys, "--format", "json"))
    temps = {t["number"]: t["params"]["grid.params.temperature"] for t in report["trials"]}
    front = {p["number"] for p in report["pareto_front"]}
    # peak rises to 0.7 while cool falls: a point at or below 0.7 is beaten by no other
    # (more cool means lower, less peak); one above it is beaten by any point t' with
    # 1.4 - t <= t' < t (as near to 0.7, and cooler).
    expected = {n for n, t in temps.items()
                if t <= PEAK or not any(1.4 - t <= u < t for u in temps.values())}
    assert front == expected and front
    assert report["best"] is None
    table = _report("p.db", capsys)
    assert table.count("pareto front: trial") == len(front)


@pytest.mark.parametrize(("search", "override", "words"), [
    ("params:\n  grid.paramz.temperature: interval(0.0, 1.0)\nobjective: peak\n", None,
     ["search.params.grid.paramz.temperature", "paramz"]),
    ("params:\n  grid.params.temperature: interval(0.0,\nobjective: peak\n", None,
     ["search.params.grid.params.temperature", "sweep syntax"]),
    ("params:\n  grid.params.temperature: 0.5\nobjective: peak\n", None,
     ["single value"]),
    ("params:\n  grid.params.temperature: interval(0.0, 1.0)\nobjective: nope\n", None,
     ["search.objective", "'nope'", "peak"]),
    ("params:\n  grid.params.temperature: interval(0.0, 1.0)\nobjective: peak\n",
     "search.trials=0", ["search.trials", "at least 1"]),
    ("params:\n  prompts: choice([plain], [nope])\nobjective: peak\n", None,
     ["search.params.prompts", "nope"]),
    ("params:\n  grid.params.temperature: interval(0.0, 1.0)\nobjective: [peak, cool]\n",
     None, ["search.direction", "two directions"]),
    ("params:\n  grid.params.temperature: interval(0.0, 1.0)\nobjective: peak\n",
     "search.objective=[peak,peak]", ["search.objective", "'peak' twice"]),
])
def test_bad_search_input_is_one_line_exit_2_and_sends_nothing(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], search: str, override: str | None,
        words: list[str]) -> None:
    monkeypatch.chdir(project)
    write_search(project, search)
    capsys.readouterr()
    code = main(["search", "+experiment=search", "--db", "b.db",
                 *([override] if override else [])])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert "search.yaml" in err or (override or "") in err
    for word in words:
        assert word in err
    assert mock_server.request_count == 0


def test_report_of_an_unknown_search_is_one_line(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    write_search(project, "params:\n  grid.params.temperature: choice(0.5)\nobjective: peak\n"
                          "trials: 1\n")
    assert main(["search", "+experiment=search", "--db", "u.db"]) == 0
    capsys.readouterr()
    assert main(["report", "--search", "search-nope", "--db", "u.db"]) == 2
    assert "search 'search-nope' not found" in capsys.readouterr().err


def test_the_example_recipe_searches_on_the_mock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """experiments/experiment/search-temperature.yaml, as the README shows it (3 trials)."""
    import shutil

    repo = Path(__file__).resolve().parent.parent
    for folder in ("experiments", "templates", "datasets"):
        shutil.copytree(repo / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    assert main(["search", "+experiment=search-temperature", "search.trials=3"]) == 0
    report = json.loads(_report("results.db", capsys, "--format", "json"))
    assert [t["state"] for t in report["trials"]] == ["complete"] * 3
    assert report["best"]["objective"] == "correct" and report["best"]["kind"] == "pass_rate"
    assert (tmp_path / "results.db.optuna").is_file()


def test_a_secret_header_is_not_stored_with_the_search(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    add_to_model(project, "headers:\n  x-team-token: tok-SECRET-9731\n"
                          "secret_headers: [x-team-token]\n")
    write_search(project, "params:\n  grid.params.temperature: choice(0.5)\nobjective: peak\n"
                          "trials: 1\n")
    assert main(["search", "+experiment=search", "--db", "x.db"]) == 0
    for name in ("x.db", "x.db.optuna"):
        data = b"".join(p.read_bytes() for p in project.glob(name + "*"))
        assert b"tok-SECRET-9731" not in data
    with sqlite3.connect("x.db") as conn:
        [(config,)] = conn.execute("select config_json from searches")
    assert "x-team-token" in config and "tok-SECRET-9731" not in config


def test_resume_refuses_while_a_live_process_runs_a_trial(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    write_search(project, "params:\n  grid.params.temperature: choice(0.5)\nobjective: peak\n"
                          "trials: 2\n")
    assert main(["search", "+experiment=search", "--db", "l.db", "search.trials=1"]) == 0
    sent = mock_server.request_count
    with Store.open("l.db") as store:
        search_id = store.resolve_search_id("latest")
        # Trial 1 as a live process leaves it: recorded, its run owned by this process.
        store.start_search_trial(search_id, 1, "run-live", {"grid.params.temperature": "0.5"},
                                 ["grid.params.temperature=[0.5]"])
        store.create_run(run_id="run-live", name="x", planned=3, config={}, overrides=[],
                         manifest={}, artifacts={}, owner_token="t")
    capsys.readouterr()
    assert main(["search", "--resume", search_id, "--db", "l.db"]) == 2
    err = capsys.readouterr().err
    assert "trial 1's run run-live is still running in pid" in err and err.count("\n") == 1
    assert mock_server.request_count == sent
