"""Ray: a local Ray cluster on 127.0.0.1 (`ray start --head`, stopped in teardown) runs a
two-job `-m` sweep and a `run.shards=2` run through Hydra's Ray launcher plugin.

Skipped, with the reason, where the `ray` extra (hydra-ray-launcher, ray) is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptlab.servers.managed import free_port
from promptlab.store import Store

pytest.importorskip("hydra_plugins.hydra_ray_launcher",
                    reason="the ray extra is not installed: pip install 'promptlab[ray]'")


def _ray_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PROMPTLAB_TEST_OA_KEY": "sk-test",
            "RAY_TMPDIR": str(tmp)}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray = shutil.which("ray", path=os.path.dirname(sys.executable))
    if ray is None:
        pytest.skip("the ray command is not installed")
    # Short: Ray's unix socket paths live under it.
    tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port()
    # --block keeps `ray start` as the parent of the cluster's processes, in a session of
    # its own: teardown ends exactly that process group (never `ray stop`, which would stop
    # every Ray cluster of the machine).
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--include-dashboard=false", "--num-cpus=2", "--disable-usage-stats",
         f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
         f"--temp-dir={tmp}"],
        env=_ray_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and head.poll() is None:
            done = subprocess.run([ray, "status", f"--address={address}"], env=_ray_env(tmp),
                                  capture_output=True, text=True, timeout=30)
            if done.returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the Ray head did not come up: {head.poll()}")
        yield address
    finally:
        _stop(head)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(head: subprocess.Popen[str]) -> None:
    """SIGTERM to the cluster's process group, then SIGKILL to whatever is left of it."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(head.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    head.wait(timeout=10)
    if head.stdout is not None:
        head.stdout.close()


def _promptlab(project: Path, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptlab", *args, "hydra/launcher=ray",
         f"hydra.launcher.ray.init.address={address}"],
        cwd=project, env=_ray_env(Path("/tmp")), capture_output=True, text=True, timeout=120)


def test_a_two_job_sweep_runs_on_a_local_ray_cluster(project: Path, ray_address: str) -> None:
    start = time.monotonic()
    done = _promptlab(project, ray_address, "run", "-m", "--db", "r.db", "grid.repeats=1,2")
    print(f"ray sweep: {time.monotonic() - start:.1f}s")
    assert done.returncode == 0, done.stderr
    with Store.open(str(project / "r.db")) as store:
        runs = store.runs(limit=10)
    assert sorted(r.planned for r in runs) == [48, 96]
    assert all(r.status == "completed" for r in runs) and len({r.sweep_id for r in runs}) == 1
    assert "job 0 " in done.stderr and "job 1 " in done.stderr
    assert not (project / "multirun").exists() and not (project / "outputs").exists()


def test_two_shards_write_one_run_on_a_local_ray_cluster(project: Path,
                                                         ray_address: str) -> None:
    start = time.monotonic()
    done = _promptlab(project, ray_address, "run", "--db", "s.db", "grid.repeats=2",
                      "run.shards=2", "run.cache=off")
    print(f"ray shards: {time.monotonic() - start:.1f}s")
    assert done.returncode == 0, done.stderr
    with Store.open(str(project / "s.db")) as store:
        [run] = store.runs(limit=10)
        assert run.status == "completed" and run.planned == 96 and run.done == 96
    assert "shard 0:" in done.stderr and "shard 1:" in done.stderr
