"""The progress bar a run shows on a terminal (rich), as a `Session` progress factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from promptlab.runner.records import RunStats

__all__ = ["progress_bar", "rate_text"]


def progress_bar(console: Console
                 ) -> Callable[[int], AbstractContextManager[Callable[[RunStats], None]]]:
    @contextmanager
    def bar(total: int) -> Iterator[Callable[[RunStats], None]]:
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[cached]} cached"),
            TextColumn("{task.fields[rate]} calls/s"), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)
        task = progress.add_task("calls", total=total, failed=0, cached=0, rate="0")
        t0 = progress.get_time()

        def update(stats: RunStats) -> None:
            elapsed = max(progress.get_time() - t0, 1e-6)
            progress.update(task, total=stats.planned, completed=stats.done,
                            failed=stats.errors + stats.skipped, cached=stats.cached,
                            rate=rate_text(stats.done / elapsed))

        with progress:
            yield update

    return bar


def rate_text(rate: float) -> str:
    """Calls a second as the progress line and the summary show them: a slow local model's
    0.4 calls/s is not "0 calls/s"."""
    return f"{rate:,.{0 if rate >= 10 else 2}f}"
