"""For tests/test_serve_*.py: a results database with scores and hostile text, and a real
`promptlab serve` application under uvicorn on 127.0.0.1 (in a thread, on a free port)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from promptlab.cli import main

EVIL = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
        '<a href="javascript:window.__pwned=3">x</a>')
TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_project(root: Path, url: str) -> Path:
    """Two models on the mock server at `url`, two prompts, a temperature axis."""
    files = {
        "experiments/config.yaml": "defaults:\n  - models: [oa, ob]\n  - prompts: [plain, "
        "polite]\n  - _self_\nname: test-exp\ndb: null\ndataset:\n  path: data/rows.jsonl\n"
        "grid:\n  params:\n    temperature: [0.0, 1.0]\n  repeats: 1\n"
        "run: {concurrency: 8, timeout_s: 5, max_attempts: 2, backoff_base_s: 0.01, "
        "backoff_max_s: 0.02, progress: false}\n",
        "experiments/models/oa.yaml": f"# @package models.oa\nprovider: openai\n"
        f"model: mock-small\nbase_url: {url}/v1\n",
        "experiments/models/ob.yaml": f"# @package models.ob\nprovider: anthropic\n"
        f"model: mock-large\nbase_url: {url}/v1\nparams: {{max_tokens: 20}}\n",
        "experiments/prompts/plain.yaml": "# @package prompts.plain\nmessages:\n"
        "  - role: user\n    content: 'What is the capital of {{ country }}?'\n",
        "experiments/prompts/polite.yaml": "# @package prompts.polite\nmessages:\n"
        "  - role: user\n    content: 'Please name the capital of {{ country }}.'\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "data").mkdir(exist_ok=True)
    return root


def make_db(project: Path, db: Path, *, evil: bool = True) -> str:
    """Run the project's experiment (2 models x 2 prompts x 2 temperatures x rows) with a
    `contains` scorer into `db`; with `evil`, a row, a run name and a param carry EVIL."""
    rows = [{"id": "fr", "country": "France", "expected": "France"},
            {"id": "de", "country": "Germany", "expected": "Germany"},
            {"id": "jp", "country": "Japan", "expected": "nope"}]
    if evil:
        rows.append({"id": EVIL, "country": EVIL, "expected": EVIL})
    (project / "data/rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = project / "experiments/config.yaml"
    text = cfg.read_text()
    if "scorers:" not in text:
        text += "scorers:\n  named:\n    type: contains\n"
    if evil:
        text = text.replace("name: test-exp", f"name: {json.dumps(EVIL)}")
    cfg.write_text(text)
    args = ["run", "--db", str(db), "--experiments", str(project / "experiments")]
    if evil:
        args.append(f"+models.oa.params.user={json.dumps(EVIL)}")
    assert main(args) in (0, 1)
    from promptlab.store import Store

    with Store.open(str(db)) as store:
        return store.runs()[0].id


class Server:
    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)


@contextmanager
def serving(db: Path, *, host: str = "127.0.0.1", token: str = TOKEN, read_only: bool = False,
            experiments: Path | None = None) -> Iterator[Server]:
    """A real server over `db` (bound to 127.0.0.1 whatever `host` says: `host` is what the
    app is told it is bound to, so the non-loopback rules can be tested locally)."""
    from promptlab.serve import ServeSettings, create_app

    app = create_app(ServeSettings(db=str(db), host=host, token=token, read_only=read_only,
                                   experiments=experiments))
    server = Server(app, free_port())
    server.thread.start()
    deadline = time.monotonic() + 15
    while not server.server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield server
    finally:
        app.state.ctx.launcher.join(30)
        server.server.should_exit = True
        server.thread.join(15)


@contextmanager
def template_db(root: Path, *, evil: bool = False) -> Iterator[tuple[Path, Path, str]]:
    """Once per module: a mock server, a project on it and a database of one scored run;
    yields (project, database, run id). Tests copy the database (`copy_db`)."""
    from promptlab.testing import MockConfig, MockServer

    with MockServer(MockConfig()) as mock:
        project = make_project(root / "proj", mock.url)
        db = root / "template.db"
        run_id = make_db(project, db, evil=evil)
        from promptlab.store import Store

        with Store.open(str(db)) as store:  # fold the WAL in, so one file is the database
            store.engine.dispose()
        import sqlite3

        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        yield project, db, run_id


def copy_db(template: Path, target: Path) -> Path:
    import shutil

    shutil.copy(template, target)
    return target
