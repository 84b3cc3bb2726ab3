"""Run or resume a prepared experiment: the glue between a config and a `Session`.

`run_experiment` records provenance (resolved config, overrides, templates and dataset
files, git and packages) and scores the run when its calls are done; `resume_run`
rebuilds an unfinished run from the database and sends only what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from promptlab.config.loading import LoadedConfig, source_file
from promptlab.config.stored import from_stored
from promptlab.errors import UserError
from promptlab.experiment.prepare import Prepared, prepare
from promptlab.experiment.rebuild import check_against_disk, from_database, redacted_keys
from promptlab.manifest import collect_manifest
from promptlab.progress import progress_bar
from promptlab.runner.client import Sender
from promptlab.runner.session import NewRun, RunOutcome, Session
from promptlab.scoring import score_run
from promptlab.store import Store

if TYPE_CHECKING:
    import httpx

__all__ = ["run_experiment", "resume_run", "session_for"]


def session_for(prepared: Prepared, store: Store, *,
                client: httpx.AsyncClient | Sender | None = None,
                console: Console | None = None, progress: bool | None = None) -> Session:
    """A session for a prepared experiment: its servers named by their config files, its
    scorers run after the calls, notes and progress on `console`."""
    console = console or Console(stderr=True)
    loaded = prepared.loaded
    where = {m.alias: source_file(f"models.{m.alias}", loaded.choices, loaded.config_dir)
             for m in prepared.spec.models}
    show = prepared.spec.run.progress if progress is None else progress

    def notice(kind: str, text: str) -> None:
        console.print(f"[yellow]{kind}:[/] {escape(text)}")

    def after(store: Store, run_id: str) -> None:
        score_run(store, run_id, prepared.scorers, prepared.spec, prepared.renderer)

    return Session(store, prepared.spec, prepared.renderer, client=client,
                   progress=progress_bar(console) if show else None, notice=notice,
                   where=where, after=after if prepared.scorers else None)


def run_experiment(loaded: LoadedConfig, *, store: Store,
                   client: httpx.AsyncClient | Sender | None = None,
                   console: Console | None = None, progress: bool | None = None,
                   prepared: Prepared | None = None, sweep_id: str | None = None,
                   run_id: str | None = None) -> RunOutcome:
    """Run a composed experiment to the end; every user error is raised before any call.
    `run_id` chosen beforehand lets a caller record it first (a search trial does)."""
    prepared = prepared or prepare(loaded)
    manifest = {**collect_manifest(loaded.root), "choices": loaded.choices}
    session = session_for(prepared, store, client=client, console=console, progress=progress)
    return session.run(NewRun(config=loaded.config, overrides=loaded.overrides,
                              manifest=manifest, artifacts=prepared.artifacts,
                              sweep_id=sweep_id), run_id)


def resume_run(store: Store, run_id: str, *, overrides: list[str] | None = None,
               experiments: Path | None = None,
               client: httpx.AsyncClient | Sender | None = None,
               console: Console | None = None, progress: bool | None = None) -> RunOutcome:
    """Finish a run: only trials without an ok result are sent again. Refuses (before
    rebuilding anything) while the process that runs it is alive."""
    store.check_free(run_id)
    info, prepared = from_database(store, run_id, overrides)
    current = check_against_disk(info, prepared, experiments)
    secrets = redacted_keys(info.config.get("models", {}), "models.")
    if secrets:
        # Secrets were never stored: take them from the project, which matches the run.
        if current is None:
            raise UserError(f"run {run_id}: {secrets[0]} is a secret that was not stored; "
                            "resume from the project directory, or pass --experiments DIR")
        loaded = from_stored(current.config, list(overrides or ()), list(info.overrides),
                             current.choices, current.config_dir)
        prepared = prepare(loaded, stored=store.artifacts(run_id))
    session = session_for(prepared, store, client=client, console=console, progress=progress)
    return session.resume(run_id)
