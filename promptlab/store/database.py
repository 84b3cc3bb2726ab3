"""Opening a database: URL resolution, engine set-up, migrations on open (one process at a
time), read-only opens, and one-line errors for a database that cannot be opened."""

from __future__ import annotations

import os
import weakref
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from promptlab.errors import UserError
from promptlab.store.lock import file_lock

__all__ = ["resolve_url", "open_engine", "migrate", "alembic_config", "current_revision",
           "dump_schema", "DEFAULT_DB", "SCHEMA_DUMP", "SCHEMA_HEAD", "READABLE_REVISIONS",
           "dispose_all"]

DEFAULT_DB = "results.db"
# The newest migration. Opening a current database checks this with one query instead of
# importing Alembic (a second of start-up); tests/test_store.py keeps it in step.
SCHEMA_HEAD = "0011"
# The revisions this promptlab's queries read as they are, so a read-only open (which never
# migrates) accepts them. 0003 added the runs' owner columns, which every run query reads;
# 0005 added result columns the result queries read, so the set started over there (0004
# only added an index); 0006 only added the batches table, which only a batch run reads;
# 0007 only added the searches tables, which only `search` and `report --search` read;
# 0008 only added the report cell caches, which reports use only where they exist;
# 0009 only added the cache's index, which only runs and plans read (they migrate);
# 0010 only added the runs whose results that index takes in at their end (the same);
# 0011 only dropped index entries filed under the wrong fingerprints (no schema change);
# tests/test_database_read_only.py reads a database at each.
READABLE_REVISIONS = frozenset({"0005", "0006", "0007", "0008", "0009", "0010", "0011"})
MIGRATIONS = Path(__file__).parent / "migrations"
# The schema at SCHEMA_HEAD as the migrations leave a new SQLite database: made by
# `python scripts/make_schema_dump.py`, checked by tests/test_store.py.
SCHEMA_DUMP = Path(__file__).parent / "schema.sqlite.sql"


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


def _sqlite_read_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")  # a writer may hold the lock for a moment
    cur.close()


# A promptlab database has both from its first revision on; another application's may
# have an Alembic version table of its own.
_OURS = ("SELECT count(*), count(CASE WHEN type = 'table' AND name IN ('alembic_version', "
         "'runs') THEN 1 END) FROM sqlite_master")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL waits for other openers
    cur.execute(_OURS)
    objects, ours = cur.fetchone()
    if ours == 2 or not objects:  # someone else's database is left as it is (and refused)
        _switch_to_wal(cur)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _switch_to_wal(cur: Any, patience_s: float = 10.0) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another opener holds the lock.

    Switching a new file to WAL needs an exclusive lock, and when two openers both hold a
    shared lock SQLite answers "database is locked" at once instead of calling the busy
    handler (it would deadlock), so the busy timeout alone does not cover it.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + patience_s
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(value) if value is not None else None


# pg_advisory_xact_lock key of the migration lock: any constant unlikely to be used by
# another application on the same database ("promptlb" in ASCII).
PG_MIGRATION_LOCK = 0x70726F6D70746C62


def _migration_lock(engine: Engine) -> AbstractContextManager[None]:
    """For SQLite, a file lock beside the database, simpler than a lock inside SQLite held
    across the transactions that pysqlite and Alembic's table rebuilds begin and end; the
    kernel releases it if the process dies."""
    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return nullcontext()
    return file_lock(Path(f"{db}.lock"))


def migrate(engine: Engine, *, from_dump: bool = True) -> None:
    """Bring the schema to the newest revision (a no-op when it is current).

    A new, empty SQLite file gets the newest schema from SCHEMA_DUMP, the statements the
    migrations make (tests/test_store.py keeps the two the same; ``from_dump=False`` runs
    the migrations instead): replaying eight migrations through Alembic took ~0.13 s of
    every command that made a new database.

    Processes that open a new or old database at the same moment take turns: the check and
    the upgrade run under a lock (a file lock beside a SQLite file, an advisory lock on
    PostgreSQL), and whoever gets it second finds the schema current.
    """
    if current_revision(engine) == SCHEMA_HEAD:
        return
    with _migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        revision = _revision(conn)
        if revision == SCHEMA_HEAD:
            return
        if conn.dialect.name == "sqlite" and not _ours_or_empty(conn, revision):
            raise UserError(f"database {_display(engine.url)} is not a promptlab database "
                            "(it has tables but not promptlab's); pass --db a promptlab "
                            "database or a new file name")
        if revision is None and conn.dialect.name == "sqlite" and from_dump:  # empty: new
            # One transaction: pysqlite would commit each CREATE on its own, and a schema
            # cut off half-way could never be opened again.
            conn.exec_driver_sql("BEGIN")
            for statement in SCHEMA_DUMP.read_text(encoding="utf-8").split(";\n\n"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
            return
        _check_known(revision, _display(engine.url))
        from alembic import command

        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _ours_or_empty(conn: Connection, revision: str | None) -> bool:
    objects, ours = conn.exec_driver_sql(_OURS).one()
    return not objects or (ours == 2 and revision is not None)


def dump_schema(conn: Connection) -> str:
    """The schema of a SQLite database, as SCHEMA_DUMP holds it: its statements in the
    order they were made, the Alembic version table and its row last."""
    rows = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").all()
    version = _revision(conn)
    statements = [sql for name, sql in rows if name not in ("alembic_version",
                                                            "alembic_version_pkc")]
    statements += [sql for name, sql in rows if name in ("alembic_version",
                                                         "alembic_version_pkc")]
    statements.append(f"INSERT INTO alembic_version (version_num) VALUES ('{version}')")
    return "".join(f"{sql};\n\n" for sql in statements)


def open_engine(url: str, *, read_only: bool = False, migrate_schema: bool = True,
                must_exist: bool = False) -> Engine:
    """An engine for `url`, its schema at the newest revision.

    ``must_exist=True`` refuses to create a SQLite file that is not there (as a read-only
    open always does): for a command that writes only now and then, a mistyped path.

    ``read_only=True`` is for commands that only read: nothing is created, migrated or
    switched to WAL; SQLite opens the file with ``mode=ro``, PostgreSQL sessions are read
    only, and any revision in READABLE_REVISIONS is accepted as it is. A database that
    cannot be opened raises UserError: one line naming it (password masked) and the fix.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"--db/PROMPTLAB_DB: '{url}' is not a database URL; give a file path "
                        "or a SQLAlchemy URL such as postgresql://user@host/db") from None
    where = _display(parsed)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, where, read_only or must_exist, read_only)
    else:
        options = {"postgresql_readonly": True} if read_only else {}
        engine = _create_engine(parsed, where, pool_pre_ping=True, execution_options=options)
    _OPEN.add(engine)
    if not (read_only or migrate_schema):
        return engine
    try:
        try:
            revision = current_revision(engine)
        except DBAPIError as exc:  # the driver, the server or the file: nothing changed yet
            raise UserError(_cannot_open(exc, parsed, where)) from None
        if read_only:
            _check_readable(revision, where)
        elif revision != SCHEMA_HEAD:
            try:
                migrate(engine)
            except OperationalError as exc:  # locked, read-only file, disk full
                raise UserError(f"database {where}: {_first_line(exc.orig)}; check the path "
                                "or URL and its permissions") from None
            except OSError as exc:  # the lock file beside a SQLite database
                raise UserError(f"database {where}: cannot create {exc.filename} "
                                f"({exc.strerror}) to upgrade the schema; check the "
                                "directory's permissions") from None
    except UserError:
        engine.dispose()
        raise
    return engine


def _display(url: URL) -> str:
    """How a message names the database: a SQLite file by its path, else the URL with any
    password masked."""
    if url.get_backend_name() == "sqlite" and not url.host and url.database not in (
            None, "", ":memory:"):
        return url.database
    return url.render_as_string(hide_password=True)


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__


def _create_engine(url: URL, where: str, **kwargs: Any) -> Engine:
    try:
        return create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise UserError(f"database URL {where}: unknown database or driver '{url.drivername}'; "
                        "give a file path, sqlite:///PATH or postgresql+psycopg://user@host/db"
                        ) from None
    except ArgumentError as exc:
        raise UserError(f"database URL {where}: {_first_line(exc)}; give a file path or a "
                        "SQLAlchemy URL such as postgresql+psycopg://user@host/db") from None
    except ImportError as exc:
        backend, driver = url.get_backend_name(), url.get_driver_name()
        fix = "install it"
        if backend == "postgresql":
            fix = ("pip install 'promptlab[postgres]'" if driver == "psycopg" else
                   "install it, or write postgresql+psycopg:// after pip install "
                   "'promptlab[postgres]'")
        raise UserError(f"database {where}: Python module {exc.name} (the {backend}+{driver} "
                        f"driver) is not installed; {fix}") from None


def _cannot_open(exc: DBAPIError, url: URL, where: str) -> str:
    reason = _first_line(exc.orig)
    if url.get_backend_name() != "sqlite":
        return (f"database {where}: {reason}; check that the server is running and the URL "
                "(host, port, user, password, database name)")
    if not isinstance(exc, OperationalError):  # "file is not a database", "malformed"
        return (f"database {where}: not a SQLite database ({reason}); pass --db a promptlab "
                "database or a new file name")
    return f"database {where}: {reason}; check the path and its permissions"


def _sqlite_engine(url: URL, where: str, must_exist: bool, read_only: bool) -> Engine:
    db = url.database
    path = Path(db) if db and db != ":memory:" and not url.query.get("uri") else None
    if must_exist and path is not None and not path.exists():
        raise UserError(f"no database at {path}; run 'promptlab run' first or pass --db")
    if not read_only:
        if path is not None and not path.parent.is_dir():
            raise UserError(f"--db: directory {path.parent} does not exist; create it or "
                            "choose another path")
        engine = _create_engine(url, where)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if path is not None:
        query = {"mode": "ro", "uri": "true"}
        if _needs_immutable(path):
            query["immutable"] = "1"
        url = url.set(database=f"file:{quote(str(path))}", query={**url.query, **query})
    engine = _create_engine(url, where)
    event.listen(engine, "connect", _sqlite_read_pragmas)
    return engine


def _needs_immutable(path: Path) -> bool:
    """Whether SQLite must be told the file cannot change (``immutable=1``) to read it.

    A WAL database is read through its -shm index, which a reader creates when missing; in a
    directory that is read-only (for us, or by its mode bits, which root is not stopped by)
    it cannot, and SQLite refuses. Without a -wal file nothing is uncheckpointed and no
    writer is at work (a writer keeps one). Only a user who may still write to the directory
    could start one during the read, which may then fail: a risk taken only where reading
    would otherwise be impossible.
    """
    try:
        with path.open("rb") as f:
            wal = f.read(20)[18:20] == b"\x02\x02"
        directory = path.parent
        writable = os.access(directory, os.W_OK) and bool(directory.stat().st_mode & 0o222)
    except OSError:
        return False  # SQLite reports it
    return wal and not writable and not Path(f"{path}-wal").exists()


def _check_readable(revision: str | None, where: str) -> None:
    if revision in READABLE_REVISIONS:
        return
    if revision is None:
        raise UserError(f"database {where} has no promptlab tables; run 'promptlab run' first "
                        "or pass --db")
    _check_known(revision, where)
    raise UserError(f"database {where} has schema revision {revision}, too old to read "
                    "without upgrading it; a writing command upgrades it: run 'promptlab run' "
                    "or 'promptlab resume' with this --db")


def _check_known(revision: str | None, where: str) -> None:
    if revision is None:
        return
    from alembic.script import ScriptDirectory

    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision not in known:
        raise UserError(f"database {where} has schema revision {revision}, made by a newer "
                        "promptlab; upgrade promptlab (pip install -U promptlab) to open it")
