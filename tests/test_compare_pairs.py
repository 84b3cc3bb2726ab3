"""compare pairs on what the comparison is about: row x prompt x repeat x swept params,
never on the params each model fixes for itself; missing pairs are explained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, write

from promptlab.cli import main


def with_rows(project: Path, n: int) -> None:
    (project / "data/rows.jsonl").write_text("".join(
        json.dumps({"id": f"r{i}", "country": f"C{i}"}) + "\n" for i in range(n)))


def add_scorer(project: Path) -> None:
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  asks:\n    type: regex\n"
                                     "    pattern: capital\n")


def compare_json(*args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["compare", *args, "--format", "json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_models_that_fix_different_params_pair_on_row_prompt_repeat_and_grid(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # oa fixes a seed, an fixes max_tokens (tests/conftest.py): neither has the other's.
    monkeypatch.chdir(project)
    with_rows(project, 6)
    add_scorer(project)
    assert main(["run", "--db", "c.db", "+models.oa.params.seed=7",
                 "grid.params.top_p=[1]", "grid.repeats=2"]) == 0
    data = compare_json("latest", "--db", "c.db", "--between", "model=oa", "--and",
                        "model=an", capsys=capsys)
    [c] = data["comparisons"]  # type: ignore[misc]
    # 6 rows x 2 prompts x 2 temperatures x 2 repeats
    assert c["pairs"] == 48
    assert c["verdict"] == "no difference: every pair agrees"


def test_two_runs_of_models_with_different_fixed_params_pair(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    with_rows(project, 6)
    add_scorer(project)
    assert main(["run", "--db", "c.db", "models=[oa]", "+models.oa.params.seed=7",
                 "grid.params.top_p=[1]"]) == 0
    assert main(["run", "--db", "c.db", "models=[an]", "grid.params.top_p=[1]"]) == 0
    assert main(["runs", "--db", "c.db"]) == 0
    capsys.readouterr()
    from promptlab.store import Store

    with Store.open(str(project / "c.db")) as store:
        second, first = [r.id for r in store.runs()]
    data = compare_json(first, second, "--db", "c.db", capsys=capsys)
    [c] = data["comparisons"]  # type: ignore[misc]
    assert c["pairs"] == 6 * 2 * 2  # rows x prompts x temperatures


def test_two_runs_that_differ_in_one_setting_pair_across_it(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two jobs of a temperature sweep: each run fixes one temperature, which is what tells
    them apart; their items pair on row x prompt x repeat."""
    monkeypatch.chdir(project)
    with_rows(project, 6)
    add_scorer(project)
    for t in ("0.0", "0.7"):
        assert main(["run", "--db", "c.db", "models=[oa]", "grid.params.top_p=[1]",
                     f"grid.params.temperature=[{t}]"]) == 0
    from promptlab.store import Store

    with Store.open(str(project / "c.db")) as store:
        second, first = [r.id for r in store.runs()]
    data = compare_json(first, second, "--db", "c.db", capsys=capsys)
    [c] = data["comparisons"]  # type: ignore[misc]
    assert c["pairs"] == 12  # 6 rows x 2 prompts


def test_missing_pairs_name_the_keys_that_differ(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    with_rows(project, 6)
    add_scorer(project)
    assert main(["run", "--db", "c.db", "models=[oa]", "grid.params.top_p=[1]",
                 "grid.params.temperature=[0.0,0.5]"]) == 0
    assert main(["run", "--db", "c.db", "models=[oa]", "grid.params.top_p=[1]",
                 "grid.params.temperature=[0.7,1.0]"]) == 0
    from promptlab.store import Store

    with Store.open(str(project / "c.db")) as store:
        second, first = [r.id for r in store.runs()]
    capsys.readouterr()
    # No item is on both sides: one line naming the key that differs, exit 2.
    assert main(["compare", first, second, "--db", "c.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "side A has temperature in {0.0, 0.5}, side B in {0.7, 1.0}" in err
    assert "add dataset rows" not in err


def test_the_compare_models_recipe_pairs_its_two_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """experiments/experiment/compare-models.yaml, as shipped, on the mock server: its two
    models fix different params (gemma-local a seed, both max_tokens)."""
    root = tmp_path / "repo"
    for name in ("experiments", "templates", "datasets"):
        shutil.copytree(REPO / name, root / name)
    monkeypatch.chdir(root)
    assert main(["run", "--db", "c.db", "--no-progress", "+experiment=compare-models",
                 "models.gemma-local.server.kind=mock",
                 "models.gemma-local-messages.server.kind=mock"]) == 0
    recipe = (REPO / "experiments/experiment/compare-models.yaml").read_text()
    command = next(line.split("#", 1)[1].strip() for line in recipe.splitlines()
                   if "promptlab compare" in line)
    args = command.split()[1:]
    assert args[:2] == ["compare", "latest"]
    data = compare_json(*args[1:], "--db", "c.db", capsys=capsys)
    [c] = data["comparisons"]  # type: ignore[misc]
    rows = sum(1 for line in (root / "datasets/capitals.jsonl").read_text().splitlines()
               if line.strip())
    assert c["pairs"] == rows * 2  # rows x (greedy, sampled)


def test_a_param_swept_in_one_run_only_is_named(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Run B sweeps top_p, run A does not: which of B's two results would pair is unknown.
    monkeypatch.chdir(project)
    with_rows(project, 3)
    add_scorer(project)
    write(project / "experiments/grid/one.yaml", "params:\n  temperature: [0.0]\n")
    assert main(["run", "--db", "c.db", "models=[oa]", "grid=one"]) == 0
    assert main(["run", "--db", "c.db", "models=[oa]", "grid.params.temperature=[0.0]"]) == 0
    from promptlab.store import Store

    with Store.open(str(project / "c.db")) as store:
        second, first = [r.id for r in store.runs()]
    capsys.readouterr()
    assert main(["compare", first, second, "--db", "c.db", "--format", "json"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "side A has top_p in {unset}, side B in {0.5, 1.0}" in err
