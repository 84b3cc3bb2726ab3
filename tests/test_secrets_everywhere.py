"""No secret is stored or printed, whatever its characters: quotes and backslashes, which
JSON escapes, URL encoding and Hydra's quoting change, included."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from conftest import write

from promptlab.cli import main
from promptlab.redaction import REDACTED, Scrubber, secret_forms
from promptlab.spec import ModelSpec

IN_YAML = 's3cr"et\\val\'ue'  # a secret header of oa, in its YAML file
INLINE = 'k3y"in\\line\'val'  # an API key written inline as an header of an (x-api-key)
IN_ENV = 'sk"env\\key\'01'  # oa's API key, from its variable
OVERRIDE = 'ov"er\\ride\'val'  # a secret header given on the command line
IN_URL = 'u"rl\\sec\'ret'  # an API key in hp's URL, URL-encoded there
SECRETS = (IN_YAML, INLINE, IN_ENV, OVERRIDE, IN_URL)
# The override as typed in a shell (Hydra's single-quoted string: \' is a quote).
OVERRIDE_ARG = "+models.oa.headers.X-Other='ov\"er\\ride\\'val'"


def _yaml_single(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def leaks(text: str) -> list[str]:
    """Every secret found in `text`, in any form it can take."""
    found = []
    for secret in SECRETS:
        forms = {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret),
                 secret.replace("'", "\\'"), json.dumps(secret.replace("'", "\\'"))[1:-1]}
        found += [f for f in forms if f in text]
    return found


@pytest.fixture
def secret_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    monkeypatch.setenv("PROMPTLAB_TEST_OA_KEY", IN_ENV)
    oa = project / "experiments/models/oa.yaml"
    oa.write_text(oa.read_text() + f"headers:\n  X-Secret: {_yaml_single(IN_YAML)}\n"
                                   "  X-Team: blue\nsecret_headers: [X-Secret, X-Other]\n")
    an = project / "experiments/models/an.yaml"
    an.write_text(an.read_text() + f"headers:\n  x-api-key: {_yaml_single(INLINE)}\n")
    url = oa.read_text().split("base_url: ")[1].split("\n")[0]
    write(project / "experiments/models/hp.yaml", f"""
        # @package models.hp
        provider: http
        model: mock-small
        base_url: {url}
        secret_params: [api_key]
        http:
          path: /chat/completions?api_key={quote(IN_URL, safe="")}
          body: '{{"model": {{{{ model | tojson }}}}, "messages": {{{{ messages | tojson }}}}}}'
          output_path: choices.0.message.content
        """)
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text().replace("models: [oa, an]", "models: [oa, an, hp]")
                   + "scorers:\n  named:\n    type: contains\n")
    (project / "data/rows.jsonl").write_text(
        json.dumps({"id": "fr", "country": "France", "expected": "France"}) + "\n")
    return project


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out + out.err


def test_secret_forms_cover_json_url_and_hydra_quoting() -> None:
    forms = secret_forms(IN_YAML)
    assert {IN_YAML, json.dumps(IN_YAML)[1:-1], quote(IN_YAML, safe=""),
            quote_plus(IN_YAML)} <= forms
    assert 's3cr"et\\val\\\'ue' in forms  # inside '...' in a Hydra override
    assert json.dumps('s3cr"et\\val\\\'ue')[1:-1] in forms  # and that stored as JSON


@pytest.mark.parametrize("secret", SECRETS)
def test_scrubber_removes_every_form(secret: str) -> None:
    model = ModelSpec(alias="m", provider="openai", model="x", base_url=None,
                      headers=(("X-S", secret),), secret_headers=("x-s",))
    scrub = Scrubber((model,))
    for text in (secret, json.dumps({"h": secret}), json.dumps([json.dumps(secret)]),
                 "https://h/p?k=" + quote(secret, safe=""), "a=" + quote_plus(secret)):
        scrubbed = scrub(text)
        assert scrubbed is not None and secret not in scrubbed and not leaks(scrubbed)
        assert REDACTED in scrubbed


def test_no_secret_in_any_stored_column(secret_project: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(capsys, "run", "--db", "s.db", "--no-progress", OVERRIDE_ARG)
    assert not leaks(out)
    with sqlite3.connect(secret_project / "s.db") as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = "
                                             "'table'")]
        assert {"runs", "trials", "attempts", "results", "scores", "artifacts"} <= set(tables)
        dumped = []
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):  # noqa: S608
                dumped += [str(v) for v in row if v is not None]
        headers = [json.loads(h) for (h,) in conn.execute(
            "select request_headers_json from attempts")]
        statuses = {s for (s,) in conn.execute("select status from results")}
    text = "\n".join(dumped)
    assert not leaks(text)
    assert statuses == {"ok"}  # every model answered: the secrets were sent
    # Header names are sent (and stored) lower-cased, so a configured one replaces a default.
    assert any(h.get("x-secret") == REDACTED and h.get("x-other") == REDACTED
               and h.get("x-team") == "blue" for h in headers)
    assert any(h.get("x-api-key") == REDACTED for h in headers)


def test_no_secret_printed_by_any_command(secret_project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = run_cli(capsys, "run", "--cfg", "job", OVERRIDE_ARG)
    assert not leaks(cfg)
    assert "X-Secret: '[REDACTED]'" in cfg and "x-api-key: '[REDACTED]'" in cfg
    assert "X-Other: '[REDACTED]'" in cfg and "X-Team: blue" in cfg
    assert "api_key=%5BREDACTED%5D" in cfg or "api_key=[REDACTED]" in cfg
    sweep = run_cli(capsys, "run", "-m", "--db", "s.db", "--no-progress", "grid.repeats=1,2",
                    OVERRIDE_ARG)
    assert "job 0:" in sweep and "job 1:" in sweep and "X-Other=" in sweep
    assert not leaks(sweep)
    for args in (["show", "--db", "s.db"], ["show", "--config", "--db", "s.db"],
                 ["export", "--db", "s.db"], ["runs", "--db", "s.db"],
                 ["show", "--trial", "0", "--db", "s.db"],
                 ["show", "--trial", "0", "--format", "json", "--db", "s.db"],
                 ["report", "--db", "s.db", "--format", "html"],
                 ["report", "--db", "s.db", "--by", "model,repeat", "--format", "markdown"]):
        printed = run_cli(capsys, *args)
        assert not leaks(printed), args
    assert (secret_project / "report-check").exists() is False


@pytest.mark.parametrize(("line", "expected"), [
    ("job 0: +models.a.headers.X-Key=abcd1234 grid.repeats=2",
     "job 0: +models.a.headers.X-Key=[REDACTED] grid.repeats=2"),
    ("+models.a.headers.Authorization='Bearer sk 1\\'2' run.concurrency=8",
     "+models.a.headers.Authorization=[REDACTED] run.concurrency=8"),
    ("++models.a.headers={X-Key: abc, Y: 'd e'} x=1", "++models.a.headers=[REDACTED] x=1"),
    ("models.a.base_url='http://h/v1?key=abcd&x=1' y=2",
     "models.a.base_url='http://h/v1?key=[REDACTED]&x=1' y=2"),
    ("+models.a.params.api_key=abcdef", "+models.a.params.api_key=[REDACTED]"),
    ("models=[a,b] models.a.params.temperature=0.5 +models.a.secret_headers=[X]",
     "models=[a,b] models.a.params.temperature=0.5 +models.a.secret_headers=[X]"),
])
def test_overrides_echoed_in_printed_lines_are_redacted(line: str, expected: str) -> None:
    from promptlab.redaction import redact_overrides

    assert redact_overrides(line) == expected
