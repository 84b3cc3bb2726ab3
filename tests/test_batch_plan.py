"""`plan` with run.batch: the calls that go by batch, at the batch price."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import prepared_for
from test_batch_run import batch_project

from promptlab.errors import UserError
from promptlab.experiment.estimate import estimate
from promptlab.testing import MockConfig, MockServer


def test_plan_counts_batch_calls_at_the_batch_price(tmp_path: Path) -> None:
    with MockServer(MockConfig()) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=10)
        full = estimate(prepared_for(root), None)
        half = estimate(prepared_for(root, "run.batch=true", "models.an.batch=false",
                                     "models.oa.price.batch_discount=0.25"), None)
    assert full.batch_calls == 0 and half.batch_calls == 10
    assert half.by_model["oa"]["cost_usd"] == pytest.approx(full.by_model["oa"]["cost_usd"] / 4)
    assert half.by_model["an"]["cost_usd"] == full.by_model["an"]["cost_usd"]


def test_plan_refuses_a_model_without_a_batch_api(tmp_path: Path) -> None:
    with MockServer(MockConfig()) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=2)
        cfg = root / "experiments/config.yaml"
        cfg.write_text(cfg.read_text().replace("provider: anthropic", "provider: http\n"
                       "    http: {body: '{}', output_path: x}"))
        with pytest.raises(UserError, match="has no batch API"):
            estimate(prepared_for(root, "run.batch=true"), None)


def test_plan_refuses_batch_for_a_model_on_a_server_the_run_starts(tmp_path: Path) -> None:
    # Found by the newcomer review: `run.batch=true` on the default llama.cpp model was
    # planned as a batch, then failed after starting the server (HTTP 404 on /v1/files).
    with MockServer(MockConfig()) as server:
        root = batch_project(tmp_path / "p", server.url + "/v1", rows=2)
        with pytest.raises(UserError, match="command server the run starts, which has no "
                                            "batch API; set models.oa.batch=false"):
            estimate(prepared_for(root, "run.batch=true", "models.oa.base_url=null",
                                  "+models.oa.server={kind: command, command: [x, '{port}']}"),
                     None)
