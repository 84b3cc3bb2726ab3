"""Experiments launched from the viewer (`POST /api/runs`), each in a background thread.

Composing and preparing happen in the request, so a mistake in the overrides is the
request's error (one line, nothing sent, no run recorded); the run row is then written, its
id goes back at once (202 + Location), and the calls run in a thread with its own `Store`.
Progress is the run's row and results, read like any other run's.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from rich.console import Console

__all__ = ["Launcher"]


class Launcher:
    """Starts runs of the experiments in `experiments` (None: launching is off)."""

    def __init__(self, db_url: str, experiments: Path | None) -> None:
        self.db_url = db_url
        self.experiments = experiments
        self.threads: dict[str, threading.Thread] = {}
        self._compose = threading.Lock()  # Hydra's compose state is global to the process

    def launch(self, overrides: list[str]) -> str:
        """Start a run with these Hydra overrides; returns its id once it is recorded."""
        from promptlab.config.loading import find_experiments_dir, load
        from promptlab.errors import UserError
        from promptlab.experiment.launch import session_for
        from promptlab.experiment.prepare import prepare
        from promptlab.manifest import collect_manifest
        from promptlab.runner.session import NewRun
        from promptlab.store import Store

        if self.experiments is None:
            raise UserError("launching is off: start the server with --experiments DIR")
        with self._compose:
            loaded = load(find_experiments_dir(self.experiments), list(overrides))
        prepared = prepare(loaded)
        store = Store.open(self.db_url)
        try:
            quiet = Console(file=io.StringIO())
            session = session_for(prepared, store, console=quiet, progress=False)
            manifest = {**collect_manifest(loaded.root), "choices": loaded.choices}
            run_id = session.start(NewRun(config=loaded.config, overrides=loaded.overrides,
                                          manifest=manifest, artifacts=prepared.artifacts))
        except BaseException:
            store.close()
            raise

        def work() -> None:
            try:
                session.execute(run_id)
            finally:
                store.close()

        thread = threading.Thread(target=work, name=f"promptlab-serve-{run_id}", daemon=True)
        self.threads[run_id] = thread
        thread.start()
        return run_id

    def join(self, timeout_s: float = 30.0) -> None:
        """Wait for the runs this server started (tests; shutdown)."""
        for thread in list(self.threads.values()):
            thread.join(timeout_s)
