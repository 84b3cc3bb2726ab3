"""Any SQLAlchemy URL works the same: a real PostgreSQL on 127.0.0.1, started by the test.

Skipped, with the reason, where PostgreSQL's server binaries or psycopg are missing;
.ci/run installs both.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptlab.cli import main
from promptlab.servers.managed import free_port
from promptlab.testing import MockServer

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
pytestmark = [
    pytest.mark.skipif(not BIN, reason="PostgreSQL is not installed (apt-get install "
                                       "postgresql); .ci/run installs it"),
    pytest.mark.skipif(shutil.which("runuser") is None and os.geteuid() == 0,
                       reason="needs runuser to start PostgreSQL as a non-root user"),
]


def delete_all(store: Any) -> None:
    """Every row a test wrote, children first (the module's database is shared)."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        for table in ("report_cell_scores", "report_cells", "scores", "attempts", "results",
                      "cache_entries", "cache_pending", "trials", "run_artifacts", "runs"):
            conn.execute(text(f"delete from {table}"))


def emptied(url: str) -> Iterator[Any]:
    """A fixture's body: a store on the module's shared database, emptied of every row the
    test wrote when it is done."""
    from promptlab.store import Store

    store = Store.open(url)
    try:
        yield store
    finally:
        delete_all(store)
        store.close()


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg")
    # Not under pytest's own temporary root: the postgres user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="promptlab-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    bin_dir = BIN[-1]
    subprocess.run(_as_postgres(f"{bin_dir}/initdb", "-D", str(data), "-A", "trust", "-U",
                                "postgres"), check=True, capture_output=True)
    subprocess.run(_as_postgres(f"{bin_dir}/pg_ctl", "-D", str(data), "-w", "-l",
                                str(data / "log"), "-o",
                                f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"),
                   check=True, capture_output=True, timeout=60)
    try:
        for _ in range(100):
            done = subprocess.run(_as_postgres(f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p",
                                               str(port), "promptlab"), capture_output=True)
            if done.returncode == 0:
                break
            time.sleep(0.1)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/promptlab"
    finally:
        subprocess.run(_as_postgres(f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast",
                                    "stop"), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_run_cache_resume_report_and_reproduce_on_postgres(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], postgres_url: str) -> None:
    monkeypatch.chdir(project)
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  asks:\n    type: regex\n    pattern: capital\n")
    assert main(["run", "--db", postgres_url, "run.max_calls=20"]) == 1
    assert main(["resume", "latest", "--db", postgres_url, "run.max_calls=100"]) == 0
    assert mock_server.request_count == 48
    assert main(["run", "--db", postgres_url]) == 0  # every call from the cache
    assert mock_server.request_count == 48
    capsys.readouterr()
    assert main(["report", "--db", postgres_url, "--format", "json", "--by", "model"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert [(g["model"], g["calls"], g["cached"], g["asks"]) for g in groups] == [
        ("an", 24, 24, 1.0), ("oa", 24, 24, 1.0)]
    assert main(["reproduce", "latest", "--db", postgres_url, "--check"]) == 0
    assert main(["runs", "--db", postgres_url]) == 0
    out = capsys.readouterr().out
    assert out.count("completed") == 3
