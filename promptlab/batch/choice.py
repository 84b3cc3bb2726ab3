"""Which models of a run go through a batch API, decided before anything is sent."""

from __future__ import annotations

from promptlab.errors import UserError
from promptlab.providers import get_provider
from promptlab.providers.base import has_batch_api
from promptlab.spec import ExperimentSpec

__all__ = ["batched_models"]


def batched_models(spec: ExperimentSpec) -> frozenset[str]:
    """The aliases whose trials go by batch: with ``run.batch=true``, every model but those
    with ``batch: false``. A model whose provider has no batch API is a one-line error."""
    if not spec.run.batch:
        return frozenset()
    out = set()
    for m in spec.models:
        if not m.batch:
            continue
        if not has_batch_api(get_provider(m.provider)):
            raise UserError(f"model '{m.alias}': provider {m.provider} has no batch API; set "
                            f"models.{m.alias}.batch=false to send it call by call, or "
                            "run.batch=false")
        if m.server is not None and m.server.kind != "mock":
            # llama.cpp, vLLM, Ollama and the like answer calls, not batch jobs.
            raise UserError(f"model '{m.alias}' runs on a {m.server.kind} server the run "
                            "starts, which has no batch API; set "
                            f"models.{m.alias}.batch=false to send it call by call, or "
                            "run.batch=false")
        out.add(m.alias)
    return frozenset(out)
