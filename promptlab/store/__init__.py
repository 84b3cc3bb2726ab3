"""The store: the database is the record of every run, read and written through `Store`."""

from promptlab.store.database import DEFAULT_DB, dispose_all, resolve_url
from promptlab.store.queries import RunInfo, ScoredResult
from promptlab.store.store import Prior, Record, Store, utcnow

__all__ = ["DEFAULT_DB", "Prior", "Record", "RunInfo", "ScoredResult", "Store", "dispose_all",
           "resolve_url", "utcnow"]
