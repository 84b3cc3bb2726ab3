"""Report cells on a real PostgreSQL: the triggers drop them, the refresh fills them, and a
report from them is the report from the rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from test_postgres import emptied, postgres_url, pytestmark  # noqa: F401
from test_report_cells import _fill, _report

from promptlab.store import Store


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Store]:  # noqa: F811
    yield from emptied(postgres_url)


def _drop(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("delete from report_cells"))
        conn.execute(text("delete from report_cell_scores"))


def test_cells_on_postgres_give_the_rows_report_and_writes_drop_them(pg: Store) -> None:
    _fill(pg, "pa", 150, 3)
    _fill(pg, "pb", 80, 4)
    assert pg.cells(["pa", "pb"]) is not None
    fast = _report(pg, ["pa", "pb"], ["model", "temperature"])
    _drop(pg)
    assert pg.cells(["pa"]) is None
    assert _report(pg, ["pa", "pb"], ["model", "temperature"]) == fast
    assert pg.refresh_cells("pa") and pg.refresh_cells("pb")
    assert _report(pg, ["pa", "pb"], ["model", "temperature"]) == fast
    with pg.engine.begin() as conn:
        conn.execute(text("update results set latency_ms = 1 where run_id = 'pa' and idx = 1"))
    assert pg.cells(["pa"]) is None and pg.cells(["pb"]) is not None
    with pg.engine.begin() as conn:
        conn.execute(text("update scores set value = 0.5 where run_id = 'pb' and idx = 2 "
                          "and scorer = 'similar'"))
        assert conn.scalar(text("select count(*) from report_cell_scores where run_id = 'pb'")
                           ) == 0
        assert conn.scalar(text("select count(*) from report_cells where run_id = 'pb'")) > 0
