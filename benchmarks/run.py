"""promptlab's own cost per call, and how it grows.

    python benchmarks/run.py            # the full suite (about 5 minutes here)
    python benchmarks/run.py --smoke    # tiny sizes, seconds: proves the suite still runs

Every measurement runs promptlab as a separate process against the mock server in
another process on 127.0.0.1, takes the median of --repeat runs, prints a table with
the target beside each number, and writes JSON (benchmarks/results/latest.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHILD = HERE / "_child.py"
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mock:
    def __init__(self, latency_ms: float = 0.0) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [PY, "-m", "promptlab", "mock-server", "--port", str(self.port),
             "--latency-ms", str(latency_ms), "--parent-pid", str(os.getpid())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/v1/models", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mock server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> int:
        with urllib.request.urlopen(self.url + "/_mock/stats", timeout=5) as r:
            return int(json.load(r).get("requests", 0))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def make_project(root: Path, url: str, rows: int, temperatures: int = 1,
                 concurrency: int = 64) -> Path:
    (root / "experiments/models").mkdir(parents=True, exist_ok=True)
    (root / "experiments/prompts").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    temps = [round(i / max(temperatures, 1), 6) for i in range(temperatures)]
    (root / "experiments/config.yaml").write_text(
        "defaults:\n  - models: [m]\n  - prompts: [p]\n  - _self_\nname: bench\n"
        "dataset:\n  path: data/rows.jsonl\n"
        f"grid:\n  params:\n    temperature: {json.dumps(temps)}\n  repeats: 1\n"
        f"run: {{concurrency: {concurrency}, progress: false, timeout_s: 60}}\n")
    (root / "experiments/models/m.yaml").write_text(
        f"# @package models.m\nprovider: openai\nmodel: mock-small\nbase_url: {url}/v1\n"
        "params: {max_tokens: 16}\nprice: {input_per_mtok: 0.15, output_per_mtok: 0.6}\n")
    (root / "experiments/prompts/p.yaml").write_text(
        "# @package prompts.p\nmessages:\n  - role: system\n    content: Answer briefly.\n"
        "  - role: user\n    content: 'Question {{ n }}: what is {{ n }} plus one?'\n")
    with open(root / "data/rows.jsonl", "w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": f"r{i}", "n": i}) + "\n")
    return root


def promptlab(cwd: Path, *args: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = subprocess.run([PY, str(CHILD), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "PROMPTLAB_DB": ""})
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"promptlab {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    m = re.search(r"BENCH_RSS_KB=(\d+) BENCH_CPU_S=([\d.]+)", done.stderr)
    run = re.search(r"attempts\)\s+in\s+([\d.]+)s", done.stderr)
    return {"wall_s": wall, "rss_mb": int(m.group(1)) / 1024 if m else None,
            "cpu_s": float(m.group(2)) if m else None,
            "run_s": float(run.group(1)) if run else None, "stdout": done.stdout}


def median_of(n: int, fn: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    samples = [fn(i) for i in range(n)]
    out = dict(samples[len(samples) // 2])
    for key in ("wall_s", "rss_mb", "cpu_s", "run_s", "rate"):
        values = [s[key] for s in samples if s.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
            out[key + "_all"] = [round(v, 3) for v in values]
    return out


def synth_results(db: Path, n: int) -> str:
    """A run of n results written straight into a migrated database (for the report)."""
    from promptlab.store import Store

    Store.open(str(db)).close()
    run_id = "bench-report"
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(db) as conn:
        conn.execute("insert into runs (id, name, status, created_at, finished_at, planned, "
                     "config_json, overrides_json, config_sha256, manifest_json, "
                     "parent_run_id, sweep_id) values (?,?,?,?,?,?,?,?,?,?,?,?)",
                     (run_id, "bench", "completed", now, now, n,
                      json.dumps({"grid": {"params": {"temperature": [0.0, 0.5, 1.0]}},
                                  "models": {"a": {"params": {}}, "b": {"params": {}}}}),
                      "[]", "x" * 64, "{}", None, None))
        for start in range(0, n, 50_000):
            trials, results = [], []
            for i in range(start, min(n, start + 50_000)):
                model, temp = ("a", "b")[i % 2], (0.0, 0.5, 1.0)[i % 3]
                trials.append((run_id, i, f"{i:064x}", model, "openai", "m", "p",
                               json.dumps({"temperature": temp}), f"r{i}", "{}", 0, "[]",
                               "managed:mock", f"{i:064x}"))
                results.append((run_id, i, "ok", "out", "stop", 10, 5, 1.0 + (i % 97),
                                None, None, 0.0001, 1, "m", None, None, None, 0, 1, None, now))
            conn.executemany("insert into trials values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", trials)
            conn.executemany("insert into results values "
                             "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", results)
    return run_id


def bench_batch_ingest(sizes: tuple[int, ...] = (10_000, 50_000, 100_000)) -> list[dict[str, Any]]:
    """Ingesting an N-line batch result file into SQLite (each size in a fresh process):
    results per second (goal >= 20,000/s at 50,000) and peak memory (flat as N grows)."""
    rows = []
    for n in sizes:
        done = subprocess.run([PY, str(HERE / "_batch_ingest.py"), str(n)], check=True,
                              capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append({"name": f"batch ingest of {n:,} result lines into SQLite",
                     "value": f"{r['rate']:,.0f} results/s, peak RSS {r['peak_rss_mb']:.0f} MB "
                              f"(+{r['growth_mb']:.0f} MB while ingesting)",
                     "target": ">= 20,000 results/s; memory flat",
                     "ok": r["rate"] >= 20_000})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; no targets judged")
    parser.add_argument("--repeat", type=int, default=3, help="runs per small measurement")
    parser.add_argument("--json", default=str(HERE / "results" / "latest.json"))
    parser.add_argument("--batch-ingest", action="store_true",
                        help="only the batch-ingest benchmark (10,000 / 50,000 / 100,000 lines)")
    args = parser.parse_args()
    if args.batch_ingest:
        for r in bench_batch_ingest((1000, 2000) if args.smoke else (10_000, 50_000, 100_000)):
            print(f"{r['name']}: {r['value']}  (target {r['target']})")
        return 0
    small, big, slow, plan_n, report_n = ((200, 1000, 64, 20_000, 20_000) if args.smoke
                                          else (10_000, 100_000, 2_000, 1_000_000, 1_000_000))
    repeat = 1 if args.smoke else args.repeat
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="promptlab-bench-"))
    fast = Mock(0.0)
    try:
        # 1. N calls at zero latency, end to end, whole command.
        proj = make_project(work / "small", fast.url, small)

        def one_small(i: int) -> dict[str, Any]:
            r = promptlab(proj, "run", "--db", str(work / f"small-{i}.db"))
            r["rate"] = small / r["wall_s"]
            return r

        before = fast.requests()
        r1 = median_of(repeat, one_small)
        assert fast.requests() - before == small * repeat
        rows.append({"name": f"{small:,} calls at zero latency, end to end (whole command)",
                     "value": f"{r1['rate']:,.0f} calls/s (wall {r1['wall_s']:.2f} s, run "
                              f"{r1['run_s']:.2f} s)", "target": ">= 1,000 calls/s",
                     "ok": r1["rate"] >= 1000, "data": r1})
        # 2. Ten times as many into the same database (it already holds the first runs).
        projb = make_project(work / "big", fast.url, big)
        rb = promptlab(projb, "run", "--db", str(work / "small-0.db"), "run.cache=off")
        rb["rate"] = big / rb["wall_s"]
        rows.append({"name": f"{big:,} calls at zero latency into the same database",
                     "value": f"{rb['rate']:,.0f} calls/s = {rb['rate'] / r1['rate']:.0%} of "
                              f"the {small:,}-call rate", "target": ">= 80%",
                     "ok": rb["rate"] >= 0.8 * r1["rate"], "data": rb})
        # 3. Server latency 200 ms at 64 in flight: how close to the ideal.
        latent = Mock(200.0)
        try:
            projl = make_project(work / "latent", latent.url, slow)
            ideal = slow * 0.2 / 64
            rl = median_of(repeat, lambda i: promptlab(projl, "run", "--db",
                                                       str(work / f"latent-{i}.db")))
        finally:
            latent.stop()
        rows.append({"name": f"{slow:,} calls at 200 ms latency, concurrency 64",
                     "value": f"run {rl['run_s']:.2f} s = {rl['run_s'] / ideal:.3f} x ideal "
                              f"({ideal:.2f} s); whole command {rl['wall_s']:.2f} s",
                     "target": "<= 1.10 x ideal", "ok": rl["run_s"] <= 1.10 * ideal,
                     "data": rl})
        # 4. The first run again: everything from the cache.
        before = fast.requests()
        rc = median_of(repeat, lambda i: promptlab(proj, "run", "--db",
                                                   str(work / "small-0.db")))
        sent = fast.requests() - before
        rows.append({"name": f"the same {small:,}-call run again, all from cache",
                     "value": f"{rc['wall_s']:.2f} s wall, {sent} requests sent",
                     "target": "<= 2 s, 0 requests", "ok": rc["wall_s"] <= 2 and sent == 0,
                     "data": rc})
        # 5. Planning a million trials: count, first and last.
        temps = plan_n // 1000
        projp = make_project(work / "plan", fast.url, 1000, temperatures=temps)
        rp = median_of(repeat, lambda i: promptlab(projp, "plan", "--count"))
        assert f"{plan_n:,} trials" in rp["stdout"], rp["stdout"]
        rows.append({"name": f"planning a {plan_n:,}-trial grid (count, first, last)",
                     "value": f"{rp['wall_s']:.2f} s, peak RSS {rp['rss_mb']:.0f} MB",
                     "target": "<= 10 s, <= 300 MB",
                     "ok": rp["wall_s"] <= 10 and rp["rss_mb"] <= 300, "data": rp})
        # 6. Memory of the first run.
        rows.append({"name": f"peak RSS during the {small:,}-call run",
                     "value": f"{r1['rss_mb']:.0f} MB", "target": "<= 250 MB",
                     "ok": r1["rss_mb"] <= 250, "data": {}})
        # 7. A report over a million stored results.
        dbr = work / "report.db"
        run_id = synth_results(dbr, report_n)
        rr = median_of(repeat, lambda i: promptlab(work, "report", run_id, "--db", str(dbr),
                                                   "--by", "model,temperature"))
        rows.append({"name": f"promptlab report over {report_n:,} results",
                     "value": f"{rr['wall_s']:.2f} s", "target": "<= 3 s",
                     "ok": rr["wall_s"] <= 3, "data": rr})
        # 8. promptlab's own CPU per call (client process; the server runs elsewhere).
        per_call = r1["cpu_s"] / small * 1e6
        rows.append({"name": "per-call CPU of promptlab itself",
                     "value": f"{per_call:,.0f} us/call (whole process, start-up included)",
                     "target": "report it", "ok": True, "data": {}})
    finally:
        fast.stop()
    width = max(len(r["name"]) for r in rows)
    print(f"\n{'benchmark':<{width}}  {'measured (median)':<62} target")
    for r in rows:
        mark = "" if args.smoke else ("  ok" if r["ok"] else "  MISSED")
        print(f"{r['name']:<{width}}  {r['value']:<62} {r['target']}{mark}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    for r in rows:
        r["data"] = {k: v for k, v in r["data"].items() if k != "stdout"}
    out.write_text(json.dumps({"smoke": args.smoke, "repeat": repeat,
                               "when": datetime.now(UTC).isoformat(), "rows": rows},
                              indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
