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

    def info(self, ref: str) -> RunInfo:
        """The run an id, a unique prefix or ``latest`` names (a UserError if none)."""
        return self.store.run(self.store.resolve_run_id(ref))
