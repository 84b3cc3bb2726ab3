"""Rebuild promptlab/store/schema.sqlite.sql, the schema a new SQLite database starts with:
the migrations run on an empty file, and what they made written out.

    python scripts/make_schema_dump.py

Run it after adding a migration; tests/test_store.py fails until it is current.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from promptlab.store.database import SCHEMA_DUMP, dump_schema, migrate, open_engine, resolve_url


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_engine(resolve_url(str(Path(tmp) / "fresh.db")), migrate_schema=False)
        migrate(engine, from_dump=False)
        with engine.connect() as conn:
            SCHEMA_DUMP.write_text(dump_schema(conn), encoding="utf-8")
        engine.dispose()
    print(f"wrote {SCHEMA_DUMP}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
