"""promptlab: declarative prompt experiments with results tracking.

The public Python API (pinned by tests/test_public_api.py)::

    import promptlab
    result = promptlab.run(["models=[mock-small]"], experiments="experiments")
    result.status, result.run_id, result.counts
    df = result.results().to_pandas()
    promptlab.resume(result.run_id)
    promptlab.load_results("results.db", "latest")

Heavy modules (Hydra, SQLAlchemy, the runner) load on first use, so that importing
promptlab, and `promptlab --help`, stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptlab.errors import ConfigError, PromptlabError, ProviderError, UserError

if TYPE_CHECKING:
    from promptlab.api import RunResult, resume, run
    from promptlab.results import Results, load_results

__version__ = "0.1.0"

__all__ = ["ConfigError", "PromptlabError", "ProviderError", "Results", "RunResult",
           "UserError", "__version__", "load_results", "resume", "run"]

_LAZY = {"run": "promptlab.api", "resume": "promptlab.api", "RunResult": "promptlab.api",
         "load_results": "promptlab.results", "Results": "promptlab.results"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptlab' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
