"""Defects an adversarial review found in `promptlab search`, each pinned by a test."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_search_support import add_to_model, write_search

import promptlab.experiment.search as search_module
from promptlab.cli.main import main
from promptlab.store import Store
from promptlab.testing import MockServer


def _points(db: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [p for (p,) in conn.execute("select params_json from search_trials "
                                           "order by number")]


@pytest.mark.parametrize("lose_study", [False, True])
def test_resume_after_ctrl_c_in_trial_0_does_not_repeat_its_point(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        lose_study: bool) -> None:
    monkeypatch.chdir(project)
    write_search(project, "params:\n  grid.params.temperature: interval(0.0, 1.2)\n"
                          "objective: peak\ntrials: 3\nseed: 3\n")
    real = search_module.finish_trial

    def interrupted(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(search_module, "finish_trial", interrupted)
    assert main(["search", "+experiment=search", "--db", "r.db"]) == 130
    monkeypatch.setattr(search_module, "finish_trial", real)
    if lose_study:
        Path("r.db.optuna").unlink()
    with Store.open("r.db") as store:
        search_id = store.resolve_search_id("latest")
    assert main(["search", "--resume", search_id, "--db", "r.db"]) == 0
    points = _points("r.db")
    assert len(points) == 3 and len(set(points)) == 3, points


@pytest.mark.parametrize("override", ["search.trials=5", "+experiment=search"])
def test_resume_refuses_experiment_overrides_in_one_line(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], override: str) -> None:
    monkeypatch.chdir(project)
    write_search(project, "params:\n  grid.params.temperature: choice(0.5)\nobjective: peak\n"
                          "trials: 1\n")
    assert main(["search", "+experiment=search", "--db", "o.db"]) == 0
    sent = mock_server.request_count
    capsys.readouterr()
    assert main(["search", "--resume", "latest", override, "--db", "o.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert override in err and "start a new search" in err
    assert mock_server.request_count == sent


@pytest.mark.parametrize("resume", [False, True])
def test_a_corrupt_optuna_file_is_one_line_naming_it(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], resume: bool) -> None:
    monkeypatch.chdir(project)
    write_search(project, "params:\n  grid.params.temperature: choice(0.5)\nobjective: peak\n"
                          "trials: 1\n")
    assert main(["search", "+experiment=search", "--db", "g.db"]) == 0
    sent = mock_server.request_count
    Path("g.db.optuna").write_text("garbage\n")
    capsys.readouterr()
    args = ["--resume", "latest"] if resume else ["+experiment=search"]
    assert main(["search", *args, "--db", "g.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "g.db.optuna" in err and "delete it" in err
    assert mock_server.request_count == sent
    with Store.open("g.db") as store:  # no new search recorded
        assert len({t.run_id for t in store.search_trials(store.resolve_search_id("latest"))
                    }) == 1


@pytest.mark.parametrize(("params", "unpriced"), [
    ("grid.params.temperature: choice(0.5)", "oa"),
    ("models: choice([oa], [an])", "an"),  # oa priced, an (a choice) not
])
def test_cost_objective_refuses_a_model_without_a_price(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], params: str, unpriced: str) -> None:
    monkeypatch.chdir(project)
    if unpriced == "an":
        add_to_model(project, "price:\n  input_per_mtok: 1\n  output_per_mtok: 2\n")
    write_search(project, f"params:\n  {params}\nobjective: cost_usd\ndirection: minimize\n"
                          "trials: 2\n")
    capsys.readouterr()
    assert main(["search", "+experiment=search", "--db", "m.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"models.{unpriced} has no price" in err and "search.yaml" in err
    assert f"models.{unpriced}.price.input_per_mtok" in err
    assert mock_server.request_count == 0
