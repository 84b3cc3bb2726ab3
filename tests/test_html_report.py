"""The HTML report opens in a real headless Chromium, and model output stays text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from promptlab.cli import main
from promptlab.testing import MockServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"
EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture
def report(project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    (project / "data/rows.jsonl").write_text(
        json.dumps({"id": "evil", "country": EVIL, "expected": "x"}) + "\n"
        + json.dumps({"id": "fr", "country": "France", "expected": "France"}) + "\n")
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  named:\n    type: contains\n")
    assert main(["run", "--db", "h.db"]) == 0
    out = project / "report.html"
    assert main(["report", "--db", "h.db", "--by", "model,temperature", "--format", "html",
                 "-o", str(out)]) == 0
    return out


def test_html_escapes_model_output(report: Path) -> None:
    html = report.read_text()
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html and "http://" not in html.split("<body>")[1]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                                              "chromium); .ci/run installs it")
def test_report_renders_in_headless_chromium_and_runs_no_script(report: Path,
                                                                tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])  # playwright gives it a fresh profile itself
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report.as_uri())
            assert page.evaluate("window.__pwned") is None
            assert page.locator("script").count() == 0
            text = page.inner_text("body")
            assert EVIL[:30] in text  # shown as text, literally
            assert page.locator("figure img").count() >= 3  # score and latency charts
            assert "named [95% CI]" in text
            page.screenshot(path=str(ARTIFACTS / "html-report.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "html-report.png").stat().st_size > 10_000
