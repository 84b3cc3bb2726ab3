"""The viewer in a real headless Chromium: runs -> run -> filter -> trial -> compare -> rate,
a screenshot of each page (test-artifacts/serve-*.png), and hostile text that stays text."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO
from serve_support import EVIL, TOKEN, Server, serving, template_db

pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium); .ci/run installs it")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    with template_db(tmp_path_factory.mktemp("serve-browser"), evil=True) as (
            _, db, run_id), serving(db) as server:
        with httpx.Client(base_url=server.url, headers={
                "Authorization": f"Bearer {TOKEN}"}) as c:  # ratings that disagree: flips
            for t in c.get(f"/api/runs/{run_id}/trials", params={"limit": 500}).json()["items"]:
                if t["row_id"] != "jp":
                    c.put(f"/api/runs/{run_id}/trials/{t['idx']}/rating",
                          json={"rating": "up" if t["model"] == "oa" else "down",
                                "comment": EVIL})
        yield server, run_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield b
        finally:
            b.close()


def _inert(page: Any) -> None:
    """Nothing hostile ran, and the page holds it as text."""
    assert page.evaluate("window.__pwned") is None
    assert page.locator("a[href^='javascript:']").count() == 0
    assert page.locator("img[src='x']").count() == 0
    scripts = page.eval_on_selector_all("script", "els => els.map(e => e.src)")
    assert all(s.endswith("/static/app.js") for s in scripts), scripts


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"serve-{name}.png"), full_page=True)


def test_walk_runs_run_filter_trial_compare_rate(served: tuple[Server, str],
                                                 browser: Any) -> None:
    server, run_id = served
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url + "/")
    assert EVIL in page.inner_text("#runs")
    _inert(page)
    _shot(page, "1-runs")

    page.click("a.run-link")
    page.wait_for_selector("#matrix")
    assert "named [95% CI]" in page.inner_text("#report")
    assert "human [95% CI]" in page.inner_text("#report")
    assert page.locator("#report svg.ci").count() >= 4
    assert EVIL in page.inner_text("#matrix")  # the evil row id and dataset value, as text
    _inert(page)
    _shot(page, "2-run")

    page.select_option("select[name=model]", "oa")
    page.check("input[name=differ]")
    page.click("#filter-form button[type=submit]")
    page.wait_for_url("**differ=1**")
    assert "model=oa" in page.url
    headers = page.locator("#matrix thead th").all_inner_texts()[1:]
    assert headers and all(h.startswith("oa") for h in headers)
    _inert(page)
    _shot(page, "3-filtered")
    page.reload()  # the URL holds the view: the same filtered view again
    assert page.locator("select[name=model]").input_value() == "oa"
    assert page.locator("input[name=differ]").is_checked()

    page.locator("a.trial-link").first.click()
    page.wait_for_selector("#output")
    assert "attempt 1" in page.inner_text("main")
    assert "sk-" not in page.content()
    _inert(page)
    _shot(page, "4-trial")

    page.goto(f"{server.url}/runs/{run_id}")
    page.fill("#compare-form input[name=between]", "model=oa")
    page.fill("#compare-form input[name=and]", "model=ob")
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#numbers")
    assert "human" in page.inner_text("#numbers")
    assert page.locator("td.diff del, td.diff ins").count() > 0  # a word diff
    assert "A is better" in page.inner_text("main")
    _inert(page)
    _shot(page, "5-compare")

    page.goto(f"{server.url}/runs/{run_id}/trials/1")
    page.fill("input.comment", "crisp " + EVIL)
    page.click("button[data-rate=down]")
    page.wait_for_selector("text=rated: bad")
    _inert(page)
    _shot(page, "6-rated")
    stored = httpx.get(f"{server.url}/api/runs/{run_id}/trials/1").json()["scores"]["human"]
    assert stored["passed"] is False and stored["detail"]["comment"] == "crisp " + EVIL
    page.reload()
    assert page.locator("button[data-rate=down].on").count() == 1
    assert page.locator("input.comment").input_value() == "crisp " + EVIL
    _inert(page)
    assert errors == []
    page.close()


def test_a_running_run_shows_its_progress(served: tuple[Server, str], browser: Any,
                                          tmp_path: Path) -> None:
    server, run_id = served
    page = browser.new_page()
    page.goto(f"{server.url}/runs/{run_id}?differ=1&q=%3Cscript%3E")
    _inert(page)
    assert page.locator("#progress").count() == 0  # a finished run has no progress bar
    page.close()
