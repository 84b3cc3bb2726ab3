"""A search whose results database is PostgreSQL: the Optuna study lives in the same
database, in its own schema (its `trials` and `alembic_version` would collide with ours)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_postgres import postgres_url, pytestmark  # noqa: F401  (the cluster, its skips)
from test_search_support import write_search

from promptlab.cli.main import main
from promptlab.testing import MockServer


def test_search_on_postgres_keeps_optuna_in_its_own_schema(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], postgres_url: str) -> None:  # noqa: F811
    import psycopg

    monkeypatch.chdir(project)
    write_search(project, """
        params:
          grid.params.temperature: choice(0.2, 0.7)
        objective: peak
        trials: 3
        sampler: random
        seed: 4
    """)
    assert main(["search", "+experiment=search", "--db", postgres_url]) == 0
    capsys.readouterr()
    assert main(["report", "--search", "latest", "--db", postgres_url, "--format",
                 "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["state"] for t in report["trials"]] == ["complete"] * 3
    assert report["best"]["value"] == max(t["values"][0] for t in report["trials"])
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        tables = set(conn.execute("select table_schema || '.' || table_name from "
                                  "information_schema.tables where table_schema in "
                                  "('public', 'optuna')").fetchall())
        told = conn.execute("select count(*) from optuna.trials where state = 'COMPLETE'"
                            ).fetchone()
    names = {t for (t,) in tables}
    assert {"public.trials", "public.search_trials", "optuna.trials", "optuna.studies",
            "optuna.alembic_version", "public.alembic_version"} <= names
    assert "public.studies" not in names
    assert told == (3,)
