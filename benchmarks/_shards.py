"""Shards on this machine (`run.shards=N` through the joblib launcher).

    python benchmarks/_shards.py [--smoke]      # or: python benchmarks/run.py --shards

1. N calls at zero latency, unsharded (one process) against 2 shards, interleaved so both
   see the same machine load: calls/s of the whole command, and of the run (for shards:
   from the run row to the last shard's return, worker start-up included).
2. 4 shards x concurrency 64 against a mock with 200 ms latency, against the ideal
   calls x latency / (4 x 64).

Each run is promptlab as its own process (`_child.py`: peak RSS and CPU of the launching
process; the shard workers are its children) against `promptlab mock-server` on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from run import Mock, make_project, median_of, promptlab

__all__ = ["postgres_rows", "shard_rows"]

JOBLIB = ["hydra/launcher=joblib"]


def _sharded(n: int) -> list[str]:
    return [f"run.shards={n}", *JOBLIB, f"hydra.launcher.n_jobs={n}"]


def shard_rows(smoke: bool, repeat: int = 3) -> list[dict[str, Any]]:
    calls, slow_calls = (400, 512) if smoke else (10_000, 10_000)
    repeat = 1 if smoke else repeat
    work = Path(tempfile.mkdtemp(prefix="promptlab-bench-shards-"))
    rows: list[dict[str, Any]] = []
    fast = Mock(0.0)
    try:
        proj = make_project(work / "fast", fast.url, calls)
        samples: dict[int, list[dict[str, Any]]] = {1: [], 2: []}

        def pair(i: int) -> dict[str, Any]:
            for shards in (1, 2):  # interleaved: the same load for both
                extra = _sharded(shards) if shards > 1 else []
                r = promptlab(proj, "run", "--db", str(work / f"s{shards}-{i}.db"),
                              "run.cache=off", *extra)
                r["rate"] = calls / r["wall_s"]
                samples[shards].append(r)
            return {}

        before = fast.requests()
        median_of(repeat, pair)
        assert fast.requests() - before == 2 * calls * repeat
        med = {k: {key: statistics.median(s[key] for s in v) for key in
                   ("rate", "wall_s", "run_s", "cpu_s")} for k, v in samples.items()}
        for shards in (1, 2):
            m = med[shards]
            rows.append({
                "name": f"{calls:,} calls at zero latency, "
                        + ("unsharded" if shards == 1 else "2 shards (joblib)"),
                "value": f"{m['rate']:,.0f} calls/s whole command (wall {m['wall_s']:.2f} s, "
                         f"run {m['run_s']:.2f} s = {calls / m['run_s']:,.0f} calls/s)",
                "target": "report it" if shards == 1 else
                          f"= {m['rate'] / med[1]['rate']:.2f} x unsharded",
                "ok": True, "data": {"runs": samples[shards]}})
    finally:
        fast.stop()
    latent = Mock(200.0)
    try:
        projl = make_project(work / "latent", latent.url, slow_calls, concurrency=64)
        ideal = slow_calls * 0.2 / (4 * 64)
        rl = median_of(repeat, lambda i: promptlab(projl, "run", "--db",
                                                   str(work / f"latent-{i}.db"),
                                                   "run.cache=off", *_sharded(4)))
    finally:
        latent.stop()
    rows.append({"name": f"{slow_calls:,} calls at 200 ms, 4 shards x concurrency 64",
                 "value": f"run {rl['run_s']:.2f} s = {rl['run_s'] / ideal:.2f} x ideal "
                          f"({ideal:.2f} s); whole command {rl['wall_s']:.2f} s",
                 "target": "report it (ideal = calls x latency / 256)", "ok": True,
                 "data": rl})
    return rows


def postgres_rows(url: str, smoke: bool) -> list[dict[str, Any]]:
    """4 shards at zero latency into PostgreSQL: the commits and connections they cost.

    `url` is a SQLAlchemy URL (postgresql+psycopg://...) of an empty database; the server's
    own counters (pg_stat_database.xact_commit, pg_stat_activity) are read before, during
    (every 50 ms) and after the run."""
    import threading
    import time

    import psycopg

    calls = 800 if smoke else 20_000
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    commits_sql = "select xact_commit from pg_stat_database where datname = current_database()"
    conns_sql = ("select count(*) from pg_stat_activity where datname = current_database() "
                 "and pid <> pg_backend_pid()")
    peak = [0]
    polls = [0]  # each poll is a committed transaction of its own: not the run's
    stop = threading.Event()
    with psycopg.connect(plain, autocommit=True) as conn:

        def poll() -> None:
            with psycopg.connect(plain, autocommit=True) as c:
                while not stop.wait(0.05):
                    peak[0] = max(peak[0], int(c.execute(conns_sql).fetchone()[0]))  # type: ignore[index]
                    polls[0] += 1

        before = int(conn.execute(commits_sql).fetchone()[0])  # type: ignore[index]
        work = Path(tempfile.mkdtemp(prefix="promptlab-bench-pg-"))
        fast = Mock(0.0)
        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            proj = make_project(work / "pg", fast.url, calls)
            r = promptlab(proj, "run", "--db", url, "run.cache=off", *_sharded(4))
        finally:
            stop.set()
            watcher.join()
            fast.stop()
        time.sleep(1.5)  # backends report their counters within a second
        after = int(conn.execute(commits_sql).fetchone()[0])  # type: ignore[index]
        commits = after - before - polls[0] - 1  # less the poller's and the first read's
    run_s = r["run_s"]
    return [{"name": f"{calls:,} calls, 4 shards into PostgreSQL (zero latency)",
             "value": f"run {run_s:.2f} s = {calls / run_s:,.0f} calls/s; {commits:,} commits "
                      f"= {calls / max(commits, 1):.0f} results per commit, "
                      f"{commits / run_s:.1f} commits/s ({commits / run_s / 4:.1f} per shard); "
                      f"peak {peak[0]} connections (4 shards + the launcher)",
             "target": "report it", "ok": True,
             "data": {"commits": commits, "peak_connections": peak[0], **r}}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL",
                        help="only the PostgreSQL row, into this (empty) database")
    args = parser.parse_args()
    rows = (postgres_rows(args.postgres, args.smoke) if args.postgres
            else shard_rows(args.smoke, args.repeat))
    for r in rows:
        print(f"{r['name']}: {r['value']}  ({r['target']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
