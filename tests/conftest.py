"""Shared fixtures: a real mock LLM server on 127.0.0.1 and a throwaway project directory."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptlab.testing import MockConfig, MockServer

REPO = Path(__file__).resolve().parent.parent

# A shell without job control starts a background job with SIGINT ignored, and a child
# inherits that: the Ctrl-C tests' runs would ignore their SIGINT and finish. With a
# handler here, every child starts with SIGINT at its default, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Hydra's compositions are remembered between commands (promptlab.config.memo): in the
# tests' own directory, not the user's cache, and by every test's runs (subprocesses too).
_MEMO = tempfile.mkdtemp(prefix="promptlab-tests-cache-")
os.environ["PROMPTLAB_CACHE_DIR"] = _MEMO
atexit.register(shutil.rmtree, _MEMO, True)


@pytest.fixture
def mock_server() -> Iterator[MockServer]:
    with MockServer(MockConfig()) as server:
        yield server


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, mock_server: MockServer) -> Path:
    """A small project: two models on the mock server, two prompts, three rows, 2x2 grid."""
    root = tmp_path / "proj"
    url = mock_server.url + "/v1"
    write(root / "experiments/config.yaml", """
        defaults:
          - models: [oa, an]
          - prompts: [plain, fewshot]
          - dataset: rows
          - grid: small
          - run: fast
          - _self_
        name: test-exp
        db: null
        """)
    write(root / "experiments/models/oa.yaml", f"""
        # @package models.oa
        provider: openai
        model: mock-small
        base_url: {url}
        api_key_env: PROMPTLAB_TEST_OA_KEY
        """)
    write(root / "experiments/models/an.yaml", f"""
        # @package models.an
        provider: anthropic
        model: mock-large
        base_url: {url}
        params:
          max_tokens: 20
        """)
    write(root / "experiments/prompts/plain.yaml", """
        # @package prompts.plain
        messages:
          - role: user
            template: ask.j2
        """)
    write(root / "experiments/prompts/fewshot.yaml", """
        # @package prompts.fewshot
        vars:
          tone: terse
        messages:
          - role: system
            content: "Be {{ tone }}. Reply as JSON like {\\"answer\\": \\"...\\"}."
          - role: user
            content: "Capital of Italy?"
          - role: assistant
            content: '{"answer": "Rome"}'
          - role: user
            template: ask.j2
        """)
    write(root / "experiments/dataset/rows.yaml", """
        name: rows
        path: data/rows.jsonl
        """)
    write(root / "experiments/grid/small.yaml", """
        params:
          temperature: [0.0, 1.0]
          top_p: [0.5, 1.0]
        repeats: 1
        """)
    write(root / "experiments/run/fast.yaml", """
        concurrency: 8
        timeout_s: 5
        max_attempts: 3
        backoff_base_s: 0.01
        backoff_max_s: 0.05
        progress: false
        """)
    write(root / "templates/ask.j2", "What is the capital of {{ country }}?\n")
    write(root / "data/rows.jsonl", """
        {"id": "fr", "country": "France", "expected": "Paris"}
        {"id": "de", "country": "Germany", "expected": "Berlin"}
        {"id": "jp", "country": "Japan", "expected": "Tokyo"}
        """)
    return root


@pytest.fixture(autouse=True)
def _test_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_TEST_OA_KEY", "sk-test-SECRET-4242")
    monkeypatch.delenv("PROMPTLAB_DB", raising=False)


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect after every test, so a socket or loop a test leaves open warns (an error
    here) in that test, not in whichever later test the collector happens to run in."""
    yield
    import gc

    gc.collect()
