"""Tool-call rate and token detail (reasoning, cached input, cache write) per group, in every
report format and on the viewer's run page; absent from plain reports."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from serve_support import TOKEN, serving
from test_report_cells import CONFIG, _record

from promptlab.cli import main
from promptlab.store import Store

DETAIL = ["tool_call_rate", "reasoning_tokens", "cached_input_tokens", "cache_write_tokens"]


def _db(path: Path, *, detail: bool) -> Path:
    rng = random.Random(7)
    with Store.open(str(path)) as store:
        store.create_run(run_id="d", name="detail", planned=120, config=CONFIG, overrides=[],
                         manifest={}, artifacts={})
        records = [_record("d", i, rng) for i in range(120)]
        if not detail:
            for r in records:
                r.result.update(tool_calls_json=None, reasoning_tokens=None,
                                cached_input_tokens=None, cache_write_tokens=None)
        store.write(records)
        store.finish_run("d", "completed")
    return path


@pytest.fixture
def detailed(tmp_path: Path) -> Path:
    return _db(tmp_path / "d.db", detail=True)


def _report(db: Path, fmt: str, capsys: pytest.CaptureFixture[str], by: str = "model") -> str:
    capsys.readouterr()
    assert main(["report", "d", "--db", str(db), "--by", by, "--format", fmt]) == 0
    return capsys.readouterr().out


def test_tool_call_rate_is_the_share_of_ok_results_with_a_call(
        detailed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    rows = [_record("d", i, rng) for i in range(120)]
    groups = {g["model"]: g for g in json.loads(_report(detailed, "json", capsys))["groups"]}
    for model in "xy":
        ok = [r.result for r in rows if r.trial["model_alias"] == model
              and r.result["status"] == "ok"]
        with_calls = sum(r["tool_calls_json"] is not None for r in ok)
        assert 0 < with_calls < len(ok)
        g = groups[model]
        assert g["tool_call_rate"] == round(with_calls / len(ok), 4)
        for key in DETAIL[1:]:
            assert g[key] == sum(r[key] or 0 for r in ok)
    assert groups["x"]["reasoning_tokens"] == 0 < groups["y"]["reasoning_tokens"]


def test_every_format_shows_the_detail_columns_when_some_group_has_them(
        detailed: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    header = next(csv.reader(io.StringIO(_report(detailed, "csv", capsys))))
    assert [c for c in header if c in DETAIL] == DETAIL
    markdown = _report(detailed, "markdown", capsys)
    assert "| tool_call_rate |" in markdown and "| cache_write_tokens |" in markdown
    table = _report(detailed, "table", capsys, by="prompt")
    assert all(h in table for h in ("tool rate", "reasoning", "cached in", "cache wr"))
    out = tmp_path / "r.html"
    assert main(["report", "d", "--db", str(detailed), "--format", "html", "-o", str(out)]) == 0
    assert "<th>tool_call_rate</th>" in out.read_text()


def test_a_plain_report_stays_narrow_but_json_keeps_every_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = _db(tmp_path / "p.db", detail=False)
    header = next(csv.reader(io.StringIO(_report(plain, "csv", capsys))))
    assert not set(header) & set(DETAIL)
    assert "tool" not in _report(plain, "markdown", capsys)
    [g, _] = json.loads(_report(plain, "json", capsys))["groups"]
    assert g["tool_call_rate"] == 0.0 and g["reasoning_tokens"] == 0


def test_the_run_page_shows_tool_calls_and_token_detail(detailed: Path, tmp_path: Path
                                                        ) -> None:
    plain = _db(tmp_path / "p.db", detail=False)
    with serving(detailed) as server, server.client() as c:
        page = c.get(f"/runs/d?token={TOKEN}&by=model", follow_redirects=True)
    assert page.status_code == 200
    assert "tool-call rate" in page.text and "cached in / cache write" in page.text
    with serving(plain) as server, server.client() as c:
        page = c.get(f"/runs/d?token={TOKEN}&by=model", follow_redirects=True)
    assert page.status_code == 200 and "tool-call rate" not in page.text


def test_export_carries_tool_calls_parsed_json_and_token_detail(
        detailed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["export", "d", "--db", str(detailed)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 120
    results = [line["result"] for line in lines]
    assert {"tool_calls_json", "parsed_json", "reasoning", "reasoning_tokens",
            "cached_input_tokens", "cache_write_tokens"} <= set(results[0])
    assert any(r["tool_calls_json"] for r in results)
    assert any(r["cache_write_tokens"] for r in results)


