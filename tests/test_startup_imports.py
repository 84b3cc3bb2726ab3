"""Start-up cost (issue 16): a command that sends nothing does not import an HTTP client,
and no command imports SQLAlchemy's ORM.

aiohttp costs about 0.1 s to import (it builds TLS contexts on import) and httpx about
0.05 s; `promptlab.runner.client` imports aiohttp when its sender opens a session, at the
first request, and httpx only for an `HttpxSender`. The schema is Core tables
(store/tables.py), so ``sqlalchemy.orm`` (about 0.04 s) is never imported. Checked in fresh
interpreters, since this test process has imported all of them long ago.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from promptlab.testing import MockServer

CLIENTS = ("aiohttp", "httpx", "httpx_aiohttp")

# Runs the command line in a fresh interpreter and reports which HTTP clients it imported.
DRIVER = ("import sys\n"
          "from promptlab.cli import main\n"
          "code = main(sys.argv[1:])\n"
          f"loaded = sorted(m for m in {CLIENTS!r} if m in sys.modules)\n"
          "print('LOADED=' + ','.join(loaded), file=sys.stderr)\n"
          "sys.exit(code)\n")


def _command(cwd: Path, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stderr.splitlines() if x.startswith("LOADED=")][-1]
    return [m for m in line.removeprefix("LOADED=").split(",") if m]


def test_the_modules_of_a_run_import_no_http_client() -> None:
    code = ("import sys\n"
            "import promptlab.cli.main, promptlab.cli.run, promptlab.experiment.launch\n"
            "import promptlab.experiment.prepare, promptlab.experiment.shard\n"
            "import promptlab.runner.session, promptlab.batch, promptlab.servers.managed\n"
            f"print(sorted(m for m in {CLIENTS!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_the_store_and_a_run_import_no_orm(project: Path, mock_server: MockServer) -> None:
    code = ("import sys\n"
            "import promptlab.store, promptlab.store.searches, promptlab.store.database\n"
            "import promptlab.cli.main, promptlab.cli.run, promptlab.experiment.launch\n"
            "print('sqlalchemy.orm' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
    # A whole run, migrating a new database, and a report of it.
    driver = DRIVER.replace(repr(CLIENTS), repr(("sqlalchemy.orm",)))
    for args in (["run", "--db", "orm.db"], ["report", "latest", "--db", "orm.db"]):
        done = subprocess.run([sys.executable, "-c", driver, *args], cwd=project,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert [x for x in done.stderr.splitlines() if x.startswith("LOADED=")] == ["LOADED="]
    assert mock_server.request_count > 0


def test_commands_that_send_nothing_import_no_http_client(project: Path,
                                                          mock_server: MockServer) -> None:
    db = str(project / "startup.db")
    # A run that sends imports aiohttp, its default client, and not httpx.
    assert _command(project, "run", "--db", db) == ["aiohttp"]
    sent = mock_server.request_count
    assert sent > 0
    # The same run again: every call from the cache, nothing sent, no client imported.
    assert _command(project, "run", "--db", db) == []
    assert _command(project, "plan", "--db", db) == []
    assert _command(project, "runs", "--db", db) == []
    assert _command(project, "report", "latest", "--db", db) == []
    assert mock_server.request_count == sent


def test_the_httpx_transport_still_imports_httpx(project: Path,
                                                 mock_server: MockServer) -> None:
    """PROMPTLAB_TRANSPORT=httpx sends through httpx (over its aiohttp transport)."""
    import os

    env = {**os.environ, "PROMPTLAB_TRANSPORT": "httpx"}
    done = subprocess.run([sys.executable, "-c", DRIVER, "run", "--db",
                           str(project / "httpx.db")], cwd=project, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED=aiohttp,httpx,httpx_aiohttp" in done.stderr
    assert mock_server.request_count > 0
