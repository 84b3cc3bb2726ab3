"""What every route of one server shares: its store, settings, report cache, launcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from promptlab.serve.launcher import Launcher
from promptlab.serve.views import ReportCache

if TYPE_CHECKING:
    from promptlab.store import RunInfo, Store

__all__ = ["Context"]


@dataclass
class Context:
    store: Store
    launcher: Launcher
    read_only: bool = False
    reports: ReportCache = field(default_factory=ReportCache)
    # Finished runs' infos: their counts are a GROUP BY over every result (0.4 s on a
    # million), and a finished run's counts do not change while its status and end stay.
    _infos: dict[str, RunInfo] = field(default_factory=dict)

    def info(self, ref: str) -> RunInfo:
        """The run an id, a unique prefix or ``latest`` names (a UserError if none)."""
        run_id = self.store.resolve_run_id(ref)
        cached = self._infos.get(run_id)
        if cached is not None and self.store.run_stamp(run_id) == (cached.status,
                                                                   cached.finished_at):
            return cached
        info = self.store.run(run_id)
        if info.status != "running" and info.finished_at is not None:
            if len(self._infos) > 256:
                self._infos.clear()
            self._infos[run_id] = info
        return info
