"""Help texts say what they mean (no argparse escapes left in), and their examples run."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from promptlab.cli import main
from promptlab.cli.main import build_parser


def help_text(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_compare_help_prints_95_percent(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(help_text(capsys, "compare").split())
    assert "paired bootstrap 95% CI" in text and "%%" not in text


def test_no_help_text_shows_an_argparse_escape(capsys: pytest.CaptureFixture[str]) -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        text = help_text(capsys, name)
        assert "%%" not in text and "%(" not in text, name
    assert "%%" not in help_text(capsys)


def examples(text: str) -> list[list[str]]:
    """Every `promptlab run ...` command in a help text (after its usage lines): quoted
    inline ('...' or "...") or one per line."""
    if text.startswith("usage:"):
        text = text.split("\n\n", 1)[-1]
    found = []
    for line_match in re.finditer(r"promptlab run", text):
        start = line_match.start()
        before = text[start - 1] if start else ""
        if before in "'\"":
            end = text.index(before, start)
            command = text[start:end]
        else:
            command = text[start:].split("\n", 1)[0]
        found.append(shlex.split(" ".join(command.split()))[2:])
    return found


def test_examples_are_found_inline_and_per_line() -> None:
    assert examples("usage: promptlab run [-h]\n\n"
                    "Examples: 'promptlab run +experiment=a', \"promptlab run 'm=[x]'\n"
                    "b=1\".\n  promptlab run c=2\n") == [["+experiment=a"], ["m=[x]", "b=1"],
                                                      ["c=2"]]


def test_the_examples_in_run_help_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Against the repository's own experiments, whose example recipe runs on mock
    servers promptlab starts itself."""
    for name in ("experiments", "templates", "datasets"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    found = examples(help_text(capsys, "run"))
    assert found, "run --help shows no example"
    for args in found:
        if not any(a.startswith("+experiment=") or a.startswith("models=") for a in args):
            continue  # the default experiment needs the local model; the README covers it
        assert main(["run", *args, "--db", "examples.db", "--no-progress"]) == 0, args
