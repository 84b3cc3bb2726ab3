"""Hostile text in every field a report shows (run name, model alias, prompt name, scorer
name, grid value, dataset row id and value, model output) stays text in every format: no
script runs in the HTML (run and sweep), Markdown renders no HTML, the terminal table
applies no markup, CSV and JSON give the strings back unchanged."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import write

from promptlab.cli import main
from promptlab.testing import MockServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

NAME = "<script>document.title='pwned-name'</script> *n* [red]n[/red]"
ALIAS = "<img src=x onerror=\"window.pwned='alias'\"> |`a`|"
PROMPT = "<b onmouseover=\"window.pwned='prompt'\">p|</b>"
SCORER = "<i>s|&amp;</i>"
GRID = "<script>window.pwned='grid'</script>[red]g[/red]"
ROW_ID = "<svg onload=\"window.pwned='row'\">"
COUNTRY = "<script>window.pwned='output'</script> & <iframe src=x>"
HOSTILE = (NAME, ALIAS, PROMPT, SCORER, GRID, ROW_ID, COUNTRY)
DIMS = "model,prompt,style,row"


def _q(text: str) -> str:
    return json.dumps(text)  # a YAML double-quoted scalar


@pytest.fixture
def hostile(project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    url = mock_server.url + "/v1"
    write(project / "experiments/config.yaml", f"""
        defaults:
          - models: [oa]
          - prompts: [plain]
          - dataset: rows
          - run: fast
          - _self_
        name: {_q(NAME)}
        db: null
        models:
          {_q(ALIAS)}:
            provider: openai
            model: mock-small
            base_url: {url}
        prompts:
          {_q(PROMPT)}:
            messages:
              - role: user
                template: ask.j2
        grid:
          params:
            style: [{_q(GRID)}, plain]
        scorers:
          {_q(SCORER)}:
            type: contains
            field: country
        """)
    (project / "data/rows.jsonl").write_text(
        json.dumps({"id": ROW_ID, "country": COUNTRY}) + "\n"
        + json.dumps({"id": "fr", "country": "France"}) + "\n")
    assert main(["run", "--db", "x.db", "--no-progress"]) == 0
    assert main(["run", "-m", "--db", "x.db", "--no-progress", "grid.repeats=1,2"]) == 0
    return project


def _sweep_id(project: Path) -> str:
    from promptlab.store import Store

    with Store.open(str(project / "x.db")) as store:
        sweep = store.runs()[0].sweep_id
    assert sweep is not None
    return sweep


def _out(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def _sources(project: Path) -> list[list[str]]:
    return [["latest"], ["--sweep", _sweep_id(project)]]


def test_html_reports_run_no_script_and_show_every_value(
        hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i, source in enumerate(_sources(hostile)):
        page = hostile / f"report-{i}.html"
        assert main(["report", *source, "--db", "x.db", "--by", DIMS, "--format", "html",
                     "-o", str(page)]) == 0
        text = page.read_text()
        assert "Content-Security-Policy" in text
        charts = r'<img alt="[^"<>]*" src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]*">'
        body = re.sub(charts, "", text.split("</title>", 1)[1]).lower()
        assert not re.search(r"<(script|img|svg|iframe|b|i)\b", body), source
        assert not re.search(r"<[^>]*\son\w+\s*=", body), source  # no handler attribute
        shown = html.unescape(re.sub(r"<[^>]+>", "", text))
        for value in (ALIAS, PROMPT, SCORER, GRID, ROW_ID, COUNTRY):
            assert value in shown, (source, value)
        if i == 0:
            assert NAME in shown
        _assert_inert_in_chromium(page)


@pytest.mark.parametrize("which", [0, 1], ids=["run", "sweep"])
def test_markdown_report_renders_no_html(hostile: Path, which: int,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from markdown_it import MarkdownIt

    source = _sources(hostile)[which]
    md = _out(capsys, "report", *source, "--db", "x.db", "--by", DIMS, "--format", "markdown")
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    for bad in ("<script", "<img", "<svg", "<iframe", "<b ", "<i>", "<em>", "<code>"):
        assert bad not in rendered, bad
    rows = re.findall(r"<tr>(.*?)</tr>", rendered, re.S)
    header = rows[0].count("<th")
    assert header == len(DIMS.split(",")) + 1 + 9  # dims, the scorer, the numbers
    assert all(r.count("<td") == header for r in rows[1:])  # no | split a cell
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    for value in (ALIAS, PROMPT, SCORER, GRID, ROW_ID):
        assert value in shown, value
    if which == 0:
        assert NAME in shown


@pytest.mark.parametrize("which", [0, 1], ids=["run", "sweep"])
def test_csv_and_json_reports_keep_every_string(hostile: Path, which: int,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    source = _sources(hostile)[which]
    data = json.loads(_out(capsys, "report", *source, "--db", "x.db", "--by", DIMS,
                           "--format", "json"))
    assert data["scorers"] == [SCORER]
    keys = {(g["model"], g["prompt"], g["style"], g["row"]) for g in data["groups"]}
    assert (ALIAS, PROMPT, GRID, ROW_ID) in keys
    if which == 0:
        assert data["name"] == NAME
    rows = list(csv.DictReader(io.StringIO(_out(capsys, "report", *source, "--db", "x.db",
                                                "--by", DIMS, "--format", "csv"))))
    assert (ALIAS, PROMPT, GRID, ROW_ID) in {(r["model"], r["prompt"], r["style"], r["row"])
                                             for r in rows}
    assert SCORER in rows[0]


@pytest.mark.parametrize("which", [0, 1], ids=["run", "sweep"])
def test_terminal_table_applies_no_markup(hostile: Path, which: int,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    source = _sources(hostile)[which]
    out = _out(capsys, "report", *source, "--db", "x.db", "--by", "style")
    assert "[red]g[/red]" in out  # shown, not applied
    out = _out(capsys, "runs", "--db", "x.db")
    assert "[red]n[/red]" in out


def test_compare_shows_hostile_labels_as_text(hostile: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = _out(capsys, "compare", "latest", "--db", "x.db", "--between", f"style={GRID}",
               "--and", "style=plain")
    assert "[red]g[/red]" in out
    data = json.loads(_out(capsys, "compare", "latest", "--db", "x.db", "--between",
                           f"style={GRID}", "--and", "style=plain", "--format", "json"))
    assert data["a"] == f"style={GRID}" and data["comparisons"][0]["scorer"] == SCORER


def _assert_inert_in_chromium(page_file: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        try:
            # Without the page's Content-Security-Policy: escaping alone must hold.
            context = browser.new_context(bypass_csp=True)
            page = context.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            assert page.evaluate("window.pwned") is None
            assert page.title().startswith("promptlab report ")
            assert page.locator("script, img:not(figure img), svg, iframe, b, i").count() == 0
            handlers = page.evaluate("""[...document.querySelectorAll('*')].flatMap(
                e => [...e.attributes].map(a => a.name)).filter(n => n.startsWith('on'))""")
            assert handlers == []
            body = page.inner_text("body")
            for value in (ALIAS, PROMPT, GRID):
                assert value in body
        finally:
            browser.close()
