"""The run's event loop: uvloop's by default where installed; PROMPTLAB_EVENT_LOOP chooses,
and a wrong value is one line, exit 2, before any run row or request."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

import promptlab.runner.session as session_mod
from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.runner.loop import loop_factory
from promptlab.testing import MockServer

uvloop = pytest.importorskip("uvloop")

ONE = ["models=[oa]", "prompts=[plain]", "grid.params.top_p=[1]"]  # 6 trials


def loop_class_of_a_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    seen: list[str] = []
    original = session_mod._Stop.run

    def spy(self: session_mod._Stop, coro):  # type: ignore[no-untyped-def]
        async def wrapped():  # type: ignore[no-untyped-def]
            seen.append(type(asyncio.get_running_loop()).__module__)
            return await coro
        return original(self, wrapped())

    monkeypatch.setattr(session_mod._Stop, "run", spy)
    monkeypatch.chdir(project)
    assert main(["run", "--db", "results.db", "--no-progress", *ONE]) == 0
    assert seen
    return seen[0]


def test_a_run_goes_through_uvloop_by_default(project: Path, mock_server: MockServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTLAB_EVENT_LOOP", raising=False)
    assert loop_class_of_a_run(project, monkeypatch).startswith("uvloop")


def test_asyncio_is_chosen_by_name(project: Path, mock_server: MockServer,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_EVENT_LOOP", "asyncio")
    assert loop_class_of_a_run(project, monkeypatch).startswith("asyncio")


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails
    monkeypatch.delenv("PROMPTLAB_EVENT_LOOP", raising=False)
    assert loop_factory() is None
    monkeypatch.setenv("PROMPTLAB_EVENT_LOOP", "uvloop")
    with pytest.raises(UserError, match="uvloop is not installed"):
        loop_factory()


def test_a_wrong_value_is_a_user_error_before_anything_is_recorded(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROMPTLAB_EVENT_LOOP", "tokio")
    monkeypatch.chdir(project)
    assert main(["run", "--db", "results.db", "--no-progress", *ONE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PROMPTLAB_EVENT_LOOP" in err[0] and "'tokio'" in err[0]
    assert mock_server.request_count == 0
    db = project / "results.db"
    if db.exists():
        assert sqlite3.connect(db).execute("select count(*) from runs").fetchone() == (0,)
