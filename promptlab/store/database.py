"""Opening a database: URL resolution, engine set-up, and migrations on open."""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from promptlab.errors import UserError

__all__ = ["resolve_url", "open_engine", "migrate", "alembic_config", "current_revision",
           "DEFAULT_DB", "SCHEMA_HEAD", "dispose_all"]

DEFAULT_DB = "results.db"
# The newest migration. Opening a current database checks this with one query instead of
# importing Alembic (a second of start-up); tests/test_store.py keeps it in step.
SCHEMA_HEAD = "0003"
MIGRATIONS = Path(__file__).parent / "migrations"


def resolve_url(explicit: str | None = None, configured: str | None = None) -> str:
    """--db, then PROMPTLAB_DB, then the config's ``db``, then ./results.db.

    A value with ``://`` is a SQLAlchemy URL; anything else is a SQLite file path.
    """
    value = explicit or os.environ.get("PROMPTLAB_DB") or configured or DEFAULT_DB
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


_OPEN: weakref.WeakSet[Engine] = weakref.WeakSet()


def dispose_all() -> None:
    """Close every pooled connection of every engine this process opened (at exit of a
    command, so no server connection is left to the garbage collector)."""
    for engine in list(_OPEN):
        engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return str(value) if value is not None else None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is current)."""
    if current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_engine(url: str, *, migrate_schema: bool = True) -> Engine:
    """An engine for `url`, with SQLite pragmas (WAL, foreign keys, busy timeout)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"--db/PROMPTLAB_DB: '{url}' is not a database URL; give a file path "
                        "or a SQLAlchemy URL such as postgresql://user@host/db") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not Path(db).parent.is_dir():
            raise UserError(f"--db: directory {Path(db).parent} does not exist; create it or "
                            "choose another path")
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    _OPEN.add(engine)
    if migrate_schema:
        try:
            migrate(engine)
        except OperationalError as exc:
            raise UserError(f"database {parsed.render_as_string(hide_password=True)}: "
                            f"{exc.orig}; check the path or URL") from None
    return engine
