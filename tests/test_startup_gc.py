"""Start-up and exit cost (issue 16): the collector around a command (cli/startup.py).

The command line pauses the cyclic collector while a command imports and composes, freezes
what that built, and freezes the whole heap at exit; an in-process caller of `main` gets
its collector back as it was. The exit code, stdout and the atexit hooks stay as they were.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.cli.startup import start_up
from promptlab.testing import MockServer


def test_start_up_pauses_the_collector_and_freezes_what_it_built() -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    try:
        with start_up("json"):
            assert not gc.isenabled()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_start_up_turns_the_collector_back_on_after_an_error() -> None:
    try:
        with pytest.raises(ValueError), start_up("a.module.never.imported"):
            raise ValueError("the config is wrong")  # the modules are not imported then
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_start_up_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with start_up():
            pass
        assert not gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.parametrize("args", [["plan", "--count"], ["run", "--cfg", "job"],
                                  ["run", "no_such_group=1"], ["run", "--bogus"]])
def test_main_in_process_leaves_the_collector_as_it_found_it(
        project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.chdir(project)
    try:
        main([*args, "--db", str(project / "gc.db")])
    except SystemExit as exc:  # argparse's usage error
        assert exc.code == 2
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_main_in_process_runs_and_thaws(project: Path, mock_server: MockServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--db", str(project / "gc.db")]) == 0
    assert mock_server.request_count > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


# A hook registered before main runs after main's own (atexit: last in, first out): it
# sees the frozen heap; one registered after main runs before the freeze. Both run.
DRIVER = """
import atexit, gc, sys
atexit.register(lambda: print(f"early hook: frozen={gc.get_freeze_count() > 0}", flush=True))
from promptlab.cli import main
code = main(sys.argv[1:])
print(f"after main: enabled={gc.isenabled()} frozen={gc.get_freeze_count()}", flush=True)
atexit.register(lambda: print(f"late hook: frozen={gc.get_freeze_count() > 0}", flush=True))
sys.exit(code)
"""


def test_the_process_freezes_at_exit_and_keeps_its_hooks_and_code(
        project: Path, mock_server: MockServer) -> None:
    db = str(project / "exit.db")
    done = subprocess.run([sys.executable, "-c", DRIVER, "run", "--db", db], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-3:] == ["after main: enabled=True frozen=0", "late hook: frozen=False",
                          "early hook: frozen=True"]
    assert "run " in done.stdout  # the summary table came out whole, before the hooks
    # A failing command keeps its code: a user error is 2.
    failed = subprocess.run([sys.executable, "-c", DRIVER, "run", "no_such_group=1", "--db",
                             db], cwd=project, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2
    assert "error:" in failed.stderr
    assert failed.stdout.splitlines()[-1] == "early hook: frozen=True"


def test_the_console_script_keeps_its_output_and_exit_codes(project: Path,
                                                            mock_server: MockServer) -> None:
    """`python -m promptlab` (entry()): every line of an export through a pipe, and the
    exit codes of a run that is ok and of a user error."""
    db = str(project / "entry.db")

    def promptlab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "promptlab", *args], cwd=project,
                              capture_output=True, text=True, timeout=120)

    assert promptlab("run", "--db", db).returncode == 0
    export = promptlab("export", "latest", "--db", db)
    assert export.returncode == 0
    assert len(export.stdout.splitlines()) == 2 * 2 * 4 * 3  # models x prompts x grid x rows
    assert export.stdout.endswith("}\n")
    bad = promptlab("run", "no_such_group=1", "--db", db)
    assert bad.returncode == 2 and "error:" in bad.stderr
