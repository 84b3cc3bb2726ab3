"""Managed local servers: start a model server (or the mock) on 127.0.0.1 for a run,
wait until it answers, and always stop it afterwards.

Each server runs in its own process (and session), so a crash in native code cannot
take the runner down, and a terminal's Ctrl-C reaches promptlab, which stops it in order.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from promptlab.errors import UserError
from promptlab.spec import ExperimentSpec, ServerSpec

__all__ = ["free_port", "ManagedServer", "managed_servers"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ManagedServer:
    def __init__(self, spec: ServerSpec, label: str) -> None:
        self.spec = spec
        self.label = label
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        parent = ["--parent-pid", str(os.getpid())]
        if self.spec.kind == "mock":
            return [sys.executable, "-m", "promptlab", "mock-server", "--port", str(self.port),
                    "--latency-ms", f"{self.spec.latency_ms:g}", *parent]
        if self.spec.kind == "llamacpp":
            model = ["--model", self.spec.model_path] if self.spec.model_path else []
            return [sys.executable, "-m", "promptlab.servers.llamacpp", "--port", str(self.port),
                    "--n-ctx", str(self.spec.n_ctx), "--n-parallel", str(self.spec.n_parallel),
                    *model, *parent]
        return [part.replace("{port}", str(self.port)).replace("{python}", sys.executable)
                for part in self.spec.command]

    def start(self) -> None:
        import httpx  # only to poll a started server: not on the path of every run

        cmd = self.command()
        try:
            self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise UserError(f"{self.label}: server.command {cmd[0]!r} could not start ({exc}); "
                            "fix the command") from None
        deadline = time.monotonic() + self.spec.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                message = (f"{self.label}: the server exited with code {self.proc.returncode} "
                           f"before it was ready: {self._tail()}")
                self.stop()
                raise UserError(message)
            try:
                r = httpx.get(self.url + self.spec.ready_path, timeout=1.0, trust_env=False)
                if r.status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise UserError(f"{self.label}: the server was not ready within "
                        f"{self.spec.ready_timeout_s:g}s; raise server.ready_timeout_s")

    def _tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "(no output)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        finally:
            self._log.close()


def resolve_fallbacks(spec: ExperimentSpec, notice: Callable[[str], None]) -> ExperimentSpec:
    """Swap a llama.cpp server for the mock where the local extra is missing and the model
    allows it (``fallback: mock``); raise a user error where it does not."""
    from promptlab.servers.llamacpp import available

    if available():
        return spec
    models = []
    for m in spec.models:
        if m.server is not None and m.server.kind == "llamacpp":
            if m.server.fallback != "mock":
                raise UserError(f"model '{m.alias}' needs llama.cpp's server: install it with "
                                "pip install -e '.[local]'")
            notice(f"model '{m.alias}': llama.cpp is not installed, so the built-in mock server "
                   "answers instead; for the real local model run pip install -e '.[local]'")
            m = replace(m, server=ServerSpec(kind="mock"))
        models.append(m)
    return replace(spec, models=tuple(models))


@contextlib.contextmanager
def managed_servers(spec: ExperimentSpec, where: dict[str, str]) -> Iterator[ExperimentSpec]:
    """Start every server the models ask for; yield the spec with their base URLs filled in."""
    servers: dict[ServerSpec, ManagedServer] = {}
    models = []
    try:
        for m in spec.models:
            if m.server is None:
                models.append(m)
                continue
            server = servers.get(m.server)
            if server is None:
                server = ManagedServer(m.server, where.get(m.alias, m.alias))
                servers[m.server] = server
                server.start()
            if m.base_url and "{port}" in m.base_url:
                base = m.base_url.replace("{port}", str(server.port))
            else:
                base = server.url + "/v1"
            limit = m.max_concurrency
            if limit is None and m.server.kind == "llamacpp":
                # More in flight than the server has slots only measures its queue.
                limit = m.server.n_parallel
            headers = m.headers
            if m.stream and m.server.kind == "llamacpp" and "connection" not in dict(headers):
                # llama.cpp closes a connection after a stream; reusing it fails at random
                # (measured: 5 of 32 streamed calls), so streamed calls get their own.
                headers = (*headers, ("connection", "close"))
            models.append(replace(m, base_url=base, max_concurrency=limit, headers=headers))
        yield replace(spec, models=tuple(models))
    finally:
        for server in servers.values():
            server.stop()
