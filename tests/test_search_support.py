"""Scorers and a project recipe for the search tests (no tests here)."""

from __future__ import annotations

import textwrap
from pathlib import Path

PEAK = 0.7


def peak(output: str, row: dict[str, object], params: dict[str, object]) -> float:
    """Highest (1.0) at temperature PEAK, falling off linearly."""
    t = params.get("temperature")
    assert isinstance(t, float | int)
    return 1.0 - abs(float(t) - PEAK)


def cool(output: str, row: dict[str, object], params: dict[str, object]) -> float:
    """Highest at temperature 0: against `peak`, a trade-off (a Pareto front)."""
    t = params.get("temperature")
    assert isinstance(t, float | int)
    return 1.0 - float(t)


SEARCH = """
    params:
      grid.params.temperature: interval(0.0, 1.2)
    objective: peak
    direction: maximize
    trials: 15
    seed: 3
"""


def add_to_model(project: Path, text: str) -> None:
    """Append YAML lines to model oa (the search's model)."""
    model = project / "experiments/models/oa.yaml"
    model.write_text(model.read_text() + text)


def write_search(project: Path, search: str = SEARCH, extra: str = "") -> None:
    """experiments/experiment/search.yaml: model oa, prompt plain, the python scorers."""
    (project / "experiments/grid/none.yaml").write_text("params: {}\nrepeats: 1\n")
    body = textwrap.indent(textwrap.dedent(search).strip("\n"), "  ")
    (project / "experiments/experiment/search.yaml").parent.mkdir(exist_ok=True)
    (project / "experiments/experiment/search.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n"
        "  - override /models: [oa]\n"
        "  - override /prompts: [plain]\n"
        "  - override /grid: none\n"
        "name: search-test\n"
        "scorers:\n"
        "  peak: {type: python, function: 'test_search_support:peak'}\n"
        "  cool: {type: python, function: 'test_search_support:cool'}\n"
        f"{extra}"
        f"search:\n{body}\n")
