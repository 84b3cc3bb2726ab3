"""The store: the database is the record of every run."""

from promptlab.store.database import DEFAULT_DB, migrate, open_engine, resolve_url
from promptlab.store.writer import Record, Store, utcnow

__all__ = ["DEFAULT_DB", "Record", "Store", "migrate", "open_engine", "resolve_url", "utcnow"]
