"""Many rows through one statement, without SQLAlchemy's work per row on SQLite.

`executemany(conn, stmt, rows)` runs `stmt` once per row of bind values, as
``conn.execute(stmt, rows)`` would. On SQLite it compiles the statement once (cached per
statement shape) and hands the DB-API plain tuples, each value through its column type's
bind processor, as SQLAlchemy itself would; elsewhere it is ``conn.execute``. Measured on
the 2-core machine, 10,000 result rows: 16 us a row through ``conn.execute``, 6.8 us of it
SQLite's own; the rest was SQLAlchemy building each row's parameters.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import Executable

__all__ = ["executemany"]

_Plan = tuple[str, tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]]
# Compiled plans per dialect (weakly held: an engine's plans go with it), per shape.
_PLANS: weakref.WeakKeyDictionary[Dialect, dict[tuple[Hashable, ...], _Plan | None]] = (
    weakref.WeakKeyDictionary())


def _plan(conn: Connection, stmt: Executable, columns: tuple[str, ...]) -> _Plan | None:
    """The SQL and, per positional parameter, its name, bind processor and value when a
    row does not give one; None when a row would need a default made per row."""
    compiled = stmt.compile(dialect=conn.dialect,  # type: ignore[attr-defined]
                            column_keys=list(columns))
    table = getattr(stmt, "table", None)
    spec = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.callable is not None:
            return None
        value = bind.value  # a literal's own value; None for a row's
        column = table.c.get(name) if table is not None else None
        if name not in columns and column is not None and column.default is not None:
            if not column.default.is_scalar:
                return None
            value = column.default.arg
        impl = bind.type.dialect_impl(conn.dialect)  # the dialect's own type: its processor
        spec.append((name, impl.bind_processor(conn.dialect), value))
    return str(compiled), tuple(spec)


def executemany(conn: Connection, stmt: Executable, rows: Sequence[dict[str, Any]],
                shape: Hashable) -> int:
    """Run `stmt` for every row (its bind values by name); returns the rows changed (-1
    where the driver cannot tell, as psycopg for many rows).
    `shape` names the statement for the compiled-statement cache: the same shape must
    always come with the same statement."""
    if not rows:
        return 0
    if conn.dialect.name != "sqlite" or conn.dialect.paramstyle != "qmark":
        return int(conn.execute(stmt, list(rows)).rowcount)
    changed = 0
    plans = _PLANS.setdefault(conn.dialect, {})
    # Rows naming different columns compile to different statements; runs of rows with
    # the same columns go together, in order (a later row may replace an earlier one).
    for columns, run in itertools.groupby(rows, key=tuple):
        group = list(run)
        key = (shape, columns)
        plan = plans[key] if key in plans else plans.setdefault(key, _plan(conn, stmt,
                                                                           columns))
        if plan is None:
            changed += int(conn.execute(stmt, group).rowcount)
            continue
        sql, spec = plan
        params = [tuple([row.get(name, default) if proc is None
                         else proc(row.get(name, default)) for name, proc, default in spec])
                  for row in group]
        changed += int(conn.exec_driver_sql(sql, params).rowcount)
    return changed
