"""Every user error: one line naming the file and key, exit code 2, and zero requests sent.

Each case edits the small project of conftest.py, runs `promptlab run` with its arguments,
and expects every fragment in the one line on stderr; a fragment starting with "!" must
not be there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.testing import MockServer

Edit = Callable[[Path], None]


def append(path: str, text: str) -> Edit:
    def edit(root: Path) -> None:
        with open(root / path, "a", encoding="utf-8") as f:
            f.write(text)
    return edit


def replace(path: str, old: str, new: str) -> Edit:
    def edit(root: Path) -> None:
        p = root / path
        text = p.read_text()
        assert old in text, f"{old!r} is not in {path}"
        p.write_text(text.replace(old, new))
    return edit


def write(path: str, content: str | bytes) -> Edit:
    def edit(root: Path) -> None:
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return edit


def both(*edits: Edit) -> Edit:
    def edit(root: Path) -> None:
        for e in edits:
            e(root)
    return edit


def nothing(root: Path) -> None:
    pass


def csv_rows(content: str | bytes) -> Edit:
    """Switch the project's dataset to data/rows.csv with this content."""
    return both(replace("experiments/dataset/rows.yaml", "rows.jsonl", "rows.csv"),
                write("data/rows.csv", content))


HEADER = "id,country,expected\n"
MODEL = "experiments/models/oa.yaml"
RUN = "experiments/run/fast.yaml"

Case = tuple[str, Edit, list[str], list[str]]

ORIGINAL: list[Case] = [
    ("unknown_key", append(MODEL, "temprature: 0.5\n"), [],
     [MODEL, "models.oa.temprature", "params.temperature", "api_key_env", "!schema.py"]),
    ("wrong_type", nothing, ["run.concurrency=lots"],
     ["run.concurrency=lots:", "run.concurrency", "whole number", "!fast.yaml"]),
    ("missing_required", replace("experiments/models/an.yaml", "model: mock-large\n", ""), [],
     ["experiments/models/an.yaml", "models.an.model", "required"]),
    ("missing_variable", replace("templates/ask.j2", "{{ country }}", "{{ contry }}"), [],
     ["templates/ask.j2", "'contry' is undefined", "row 'fr'"]),
    ("missing_api_key", nothing, ["models.oa.api_key_env=NO_SUCH_KEY_VAR"],
     ["NO_SUCH_KEY_VAR is not set", MODEL]),
    ("unknown_model_option", nothing, ["models=[oa,nope]"],
     ["models=[oa,nope]:", "'nope'", "experiments/models/", "an, oa"]),
    ("unknown_provider", replace(MODEL, "provider: openai", "provider: openia"),
     [], [MODEL, "unknown provider 'openia'"]),
    ("missing_dataset_file", replace("experiments/dataset/rows.yaml", "rows.jsonl", "nope.jsonl"),
     [], ["experiments/dataset/rows.yaml", "dataset.path", "does not exist"]),
    ("missing_template_file", replace("experiments/prompts/plain.yaml", "ask.j2", "gone.j2"), [],
     ["experiments/prompts/plain.yaml", "template 'gone.j2' not found"]),
    ("bad_override_syntax", nothing, ["run.concurrency=[1,"], ["run.concurrency=[1,:"]),
    ("template_syntax", replace("templates/ask.j2", "{{ country }}", "{{ country "), [],
     ["templates/ask.j2", "syntax error"]),
    ("bad_jsonl", append("data/rows.jsonl", "{not json}\n"), [], ["rows.jsonl:4", "invalid JSON"]),
    ("empty_grid_axis", nothing, ["grid.params.temperature=[]"],
     ["experiments/grid/small.yaml", "grid.params.temperature"]),
    # The same value twice made two trials with one key: the database refused them after
    # their calls were paid for, and the run failed with a traceback.
    ("grid_value_twice", nothing, ["grid.params.temperature=[0.5,0.5]"],
     ["grid.params.temperature=[0.5,0.5]:", "0.5", "twice", "grid.repeats",
      "!small.yaml"]),
    ("grid_value_twice_in_file", replace("experiments/grid/small.yaml", "top_p: [0.5, 1.0]",
                                         "top_p: [0.5, 1.0, 0.5]"), [],
     ["experiments/grid/small.yaml", "grid.params.top_p", "0.5", "twice"]),
    ("grid_mapping_twice", nothing, ["+grid.params.stop=[{a: 1},{a: 1}]"],
     ["grid.params.stop", "twice"]),
]

DATASETS: list[Case] = [
    ("csv_row_with_extra_field", csv_rows(HEADER + "fr,France,Paris\nde,Germany,Berlin,x\n"), [],
     ["data/rows.csv:3", "4 fields", "3 columns"]),
    ("csv_short_row", csv_rows(HEADER + "fr,France\n"), [],
     ["data/rows.csv:2", "missing", "expected", "!None"]),
    ("csv_short_row_after_quoted_newline",
     csv_rows(HEADER + 'de,"Ger\nmany",Berlin\nfr,France\n'), [],
     ["data/rows.csv:4", "missing", "expected"]),
    ("csv_unclosed_quote", csv_rows(HEADER + 'fr,"France,Paris\nde,Germany,Berlin\n'), [],
     ["data/rows.csv:2", "quote"]),
    ("csv_quote_inside_field", csv_rows(HEADER + 'fr,"Fra"nce,Paris\n'), [],
     ["data/rows.csv:2", "quote"]),
    ("csv_empty_header", csv_rows("\nfr,France,Paris\n"), [], ["data/rows.csv:1", "header"]),
    ("csv_empty_file", csv_rows(""), [], ["data/rows.csv", "empty"]),
    ("csv_unnamed_column", csv_rows("id,,expected\nfr,France,Paris\n"), [],
     ["data/rows.csv:1", "column 2", "no name"]),
    ("csv_duplicate_column", csv_rows("id,country,country\nfr,France,Paris\n"), [],
     ["data/rows.csv:1", "'country'", "twice"]),
    ("csv_not_utf8", csv_rows(HEADER.encode() + b"fr,Fran\xe7e,Paris\n"), [],
     ["data/rows.csv", "UTF-8", "line 2"]),
    ("jsonl_not_utf8", write("data/rows.jsonl", b'{"id": "fr", "country": "Fran\xe7e"}\n'), [],
     ["data/rows.jsonl", "UTF-8", "line 1"]),
    ("jsonl_utf16", write("data/rows.jsonl", '{"id": "fr"}\n'.encode("utf-16")), [],
     ["data/rows.jsonl", "UTF-16", "UTF-8"]),
    ("jsonl_array_line", append("data/rows.jsonl", "[1, 2]\n"), [],
     ["data/rows.jsonl:4", "JSON array", "object"]),
    ("jsonl_string_line", append("data/rows.jsonl", '"Spain"\n'), [],
     ["data/rows.jsonl:4", "JSON string", "object"]),
    ("jsonl_null_line", append("data/rows.jsonl", "null\n"), [], ["data/rows.jsonl:4", "null"]),
    ("jsonl_error_counts_blank_lines", append("data/rows.jsonl", '\n\n{"id": "es"\n'), [],
     ["data/rows.jsonl:6", "invalid JSON"]),
    ("jsonl_only_blank_lines", write("data/rows.jsonl", "\n\n  \n"), [],
     ["experiments/dataset/rows.yaml", "no rows"]),
    ("dataset_unknown_format",
     both(replace("experiments/dataset/rows.yaml", "rows.jsonl", "rows.txt"),
          write("data/rows.txt", "fr France Paris\n")), [],
     ["experiments/dataset/rows.yaml", "dataset.path", ".jsonl or .csv"]),
    ("dataset_duplicate_ids", append("data/rows.jsonl", '{"id": "fr", "country": "X"}\n'), [],
     ["experiments/dataset/rows.yaml", "'fr'", "twice"]),
    ("dataset_inline_rows_not_mappings", write("experiments/dataset/rows.yaml", "rows: [a, b]\n"),
     [], ["experiments/dataset/rows.yaml", "dataset.rows[0]"]),
    ("dataset_path_and_rows", append("experiments/dataset/rows.yaml", "rows: [{a: 1}]\n"), [],
     ["experiments/dataset/rows.yaml", "exactly one of"]),
    ("dataset_missing_id_field", append("experiments/dataset/rows.yaml", "id_field: key\n"), [],
     ["experiments/dataset/rows.yaml", "'key'"]),
]

YAML_URLS_HEADERS: list[Case] = [
    ("yaml_syntax_in_run_file", write(RUN, "concurrency: 8\ntimeout_s: [5\n"), [],
     [RUN + ":3", "YAML"]),
    ("yaml_syntax_in_model_file", replace(MODEL, "model: mock-small", "model: mock: small"), [],
     [MODEL + ":3", "YAML"]),
    ("yaml_syntax_in_config", append("experiments/config.yaml", "name: {x\n"), [],
     ["experiments/config.yaml:", "YAML"]),
    ("yaml_tab_indent", write(RUN, "concurrency: 8\n\tprogress: false\n"), [],
     [RUN + ":2", "YAML"]),
    ("yaml_duplicate_key", append(RUN, "concurrency: 9\n"), [],
     [RUN + ":", "duplicate key"]),
    ("yaml_not_utf8", write(RUN, b"concurrency: 8\n# caf\xe9\n"), [], [RUN, "UTF-8", "line 2"]),
    ("yaml_top_level_scalar", write(RUN, "8\n"), [], [RUN, "mapping"]),
    ("yaml_top_level_list", write(RUN, "- concurrency: 8\n"), [], [RUN, "run", "mapping"]),
    ("yaml_defaults_not_a_list", write("experiments/config.yaml", "defaults: 5\n"), [],
     ["experiments/config.yaml", "defaults"]),
    ("base_url_without_scheme", replace(MODEL, "base_url: http://", "base_url: "), [],
     [MODEL, "models.oa.base_url", "http://127.0.0.1"]),
    ("base_url_without_colon", replace(MODEL, "base_url: http://", "base_url: http//"), [],
     [MODEL, "models.oa.base_url", "http://"]),
    ("base_url_with_space", nothing, ["models.oa.base_url='http://127.0.0.1:1/v 1'"],
     ["models.oa.base_url=", "space"]),
    ("base_url_other_scheme", nothing, ["models.oa.base_url=ftp://127.0.0.1/v1"],
     ["models.oa.base_url=ftp://127.0.0.1/v1:", "http"]),
    ("base_url_bad_port", nothing, ["models.oa.base_url=http://127.0.0.1:99999/v1"],
     ["models.oa.base_url", "port"]),
    ("header_value_with_newline", append(MODEL, 'headers: {X-A: "a\\nb"}\n'), [],
     [MODEL, "models.oa.headers.X-A", "line break"]),
    ("header_value_with_newline_override", nothing, ["models.oa.headers.X-A='a\nb'"],
     # Header values typed on the command line are echoed redacted (they may be keys).
     ["models.oa.headers.X-A=[REDACTED]", "line break"]),
    ("header_name_with_space", append(MODEL, 'headers: {"X A": "b"}\n'), [],
     [MODEL, "models.oa.headers", "'X A'"]),
    ("header_value_yaml_boolean", append(MODEL, "headers: {X-Debug: yes}\n"), [],
     [MODEL, "models.oa.headers.X-Debug", "quote"]),
    ("server_ready_path_relative", append(MODEL, "server: {kind: mock, ready_path: v1}\n"), [],
     [MODEL, "models.oa.server.ready_path", "/"]),
]

RANGES: list[Case] = [
    ("concurrency_zero", nothing, ["run.concurrency=0"], ["run.concurrency=0:", "at least 1"]),
    ("batch_size_zero", nothing, ["run.batch_size=0"], ["run.batch_size=0:", "at least 1"]),
    ("batch_size_negative", nothing, ["run.batch_size=-5"], ["run.batch_size=-5:", "at least 1"]),
    ("batch_size_zero_in_file", append(RUN, "batch_size: 0\n"), [],
     [RUN, "run.batch_size", "at least 1"]),
    ("timeout_zero", nothing, ["run.timeout_s=0"], ["run.timeout_s", "greater than 0"]),
    ("timeout_nan", nothing, ["run.timeout_s=nan"], ["run.timeout_s", "finite"]),
    ("max_attempts_zero", nothing, ["run.max_attempts=0"], ["run.max_attempts", "at least 1"]),
    ("backoff_base_negative", nothing, ["run.backoff_base_s=-1"],
     ["run.backoff_base_s", "at least 0"]),
    ("backoff_max_below_base", nothing, ["run.backoff_max_s=0.001"],
     ["run.backoff_max_s=0.001:", "run.backoff_base_s"]),
    ("max_calls_zero", nothing, ["run.max_calls=0"], ["run.max_calls", "at least 1", "null"]),
    ("max_cost_negative", nothing, ["run.max_cost_usd=-1"], ["run.max_cost_usd", "at least 0"]),
    ("dataset_limit_zero", nothing, ["dataset.limit=0"], ["dataset.limit", "at least 1"]),
    ("repeats_zero", nothing, ["grid.repeats=0"], ["grid.repeats=0:", "at least 1"]),
    ("model_max_concurrency_zero", nothing, ["models.oa.max_concurrency=0"],
     ["models.oa.max_concurrency", "at least 1"]),
    ("model_rpm_zero", append(MODEL, "rpm: 0\n"), [], [MODEL, "models.oa.rpm", "greater than 0"]),
    ("model_tpm_negative", nothing, ["models.oa.tpm=-1"], ["models.oa.tpm", "greater than 0"]),
    ("model_timeout_zero", nothing, ["models.an.timeout_s=0"],
     ["models.an.timeout_s", "greater than 0"]),
    ("price_negative", append(MODEL, "price: {input_per_mtok: -1}\n"), [],
     [MODEL, "models.oa.price.input_per_mtok", "at least 0"]),
    ("server_ready_timeout_zero", append(MODEL, "server: {kind: mock, ready_timeout_s: 0}\n"), [],
     [MODEL, "models.oa.server.ready_timeout_s", "greater than 0"]),
    ("server_n_ctx_zero", append(MODEL, "server: {kind: mock, n_ctx: 0}\n"), [],
     [MODEL, "models.oa.server.n_ctx", "at least 1"]),
    ("server_n_parallel_zero", append(MODEL, "server: {kind: mock, n_parallel: 0}\n"), [],
     [MODEL, "models.oa.server.n_parallel", "at least 1"]),
    ("scorer_threshold_nan",
     append("experiments/config.yaml",
            "scorers: {j: {type: judge, model: an, template: ask.j2, threshold: .nan}}\n"), [],
     ["experiments/config.yaml", "scorers.j.threshold", "finite"]),
]

NAMES: list[Case] = [
    ("unknown_model_option_close", nothing, ["models=[oa,ann]"],
     ["models=[oa,ann]:", "did you mean 'an'"]),
    ("unknown_dataset_option", nothing, ["dataset=rowz"],
     ["dataset=rowz:", "did you mean 'rows'", "experiments/dataset/"]),
    ("unknown_option_in_defaults", replace("experiments/config.yaml", "dataset: rows",
                                           "dataset: rowz"), [],
     ["experiments/config.yaml", "'rowz'", "did you mean 'rows'"]),
    ("unknown_group_in_defaults", replace("experiments/config.yaml", "- grid: small",
                                          "- gird: small"), [],
     ["experiments/config.yaml", "'gird'", "did you mean grid"]),
    ("unknown_group_override", nothing, ["modles=[oa]"], ["modles=[oa]:", "did you mean models"]),
    ("unknown_experiment_group", nothing, ["+experiment=nope"],
     ["+experiment=nope:", "experiments/experiment/"]),
    ("unknown_top_level_override", nothing, ["nmae=x"], ["nmae=x:", "did you mean name"]),
    ("group_not_in_defaults_needs_plus",
     write("experiments/experiment/x.yaml", "# @package _global_\nname: x\n"), ["experiment=x"],
     ["experiment=x:", "+experiment=x"]),
    ("mistyped_run_override", nothing, ["run.concurency=8"],
     ["run.concurency=8:", "did you mean run.concurrency", "batch_size", "!+run", "!append"]),
    ("mistyped_run_override_with_plus", nothing, ["+run.concurency=8"],
     ["+run.concurency=8:", "did you mean run.concurrency", "!append"]),
    ("mistyped_model_override", nothing, ["models.oa.max_concurency=2"],
     ["models.oa.max_concurency=2:", "did you mean models.oa.max_concurrency"]),
    ("mistyped_key_in_run_file", append(RUN, "concurency: 8\n"), [],
     [RUN, "run.concurency", "did you mean run.concurrency", "!schema.py"]),
    ("mistyped_key_in_model_file", append(MODEL, "max_concurency: 4\n"), [],
     [MODEL, "did you mean models.oa.max_concurrency"]),
    ("mistyped_server_key", append(MODEL, "server: {kind: mock, n_ctxx: 5}\n"), [],
     [MODEL, "models.oa.server.n_ctxx", "did you mean models.oa.server.n_ctx"]),
    ("mistyped_message_key", replace("experiments/prompts/plain.yaml", "template:", "temp1ate:"),
     [], ["experiments/prompts/plain.yaml", "temp1ate", "did you mean", "template"]),
    ("mistyped_top_level_key", append("experiments/config.yaml", "nmae: x\n"), [],
     ["experiments/config.yaml", "nmae", "did you mean name"]),
    ("bad_float_override", nothing, ["run.timeout_s=soon"], ["run.timeout_s=soon:", "number"]),
    ("bad_bool_override", nothing, ["run.progress=maybe"],
     ["run.progress=maybe:", "true or false"]),
    ("bad_value_in_file", replace(RUN, "concurrency: 8", "concurrency: lots"), [],
     [RUN, "run.concurrency", "whole number"]),
    ("override_without_value", nothing, ["run.concurrency"], ["run.concurrency:", "="]),
    ("unknown_endpoint", nothing, ["models.oa.endpoint=chats"],
     ["models.oa.endpoint=chats:", "chat"]),
    ("unknown_role", replace("experiments/prompts/plain.yaml", "role: user", "role: usr"), [],
     ["experiments/prompts/plain.yaml", "prompts.plain.messages[0].role", "user"]),
]

WORDS: list[Case] = [
    ("cache_on_is_a_yaml_boolean", append(RUN, "cache: on\n"), [],
     [RUN, "run.cache", "quote", "!'True'"]),
    ("cache_unknown_policy", nothing, ["run.cache=sometimes"],
     ["run.cache=sometimes:", "off, read or readwrite"]),
    ("model_name_yaml_boolean", replace(MODEL, "model: mock-small", "model: no"), [],
     [MODEL, "models.oa.model", "quote"]),
]

TEMPLATES_AND_CLI: list[Case] = [
    ("template_not_utf8", write("templates/ask.j2", b"Capital of {{ country }}, caf\xe9?\n"), [],
     ["templates/ask.j2", "UTF-8"]),
    ("template_division_by_zero", write("templates/ask.j2", "{{ 1 / 0 }} {{ country }}\n"), [],
     ["templates/ask.j2", "division by zero", "row 'fr'"]),
    ("template_type_error", write("templates/ask.j2", "{{ country + 1 }}\n"), [],
     ["templates/ask.j2", "row 'fr'"]),
    ("template_unknown_filter", write("templates/ask.j2", "{{ country | shout }}\n"), [],
     ["templates/ask.j2:1", "shout", "!raw"]),
    ("template_missing_include", write("templates/ask.j2", "{% include 'part.j2' %}\n"), [],
     ["templates/ask.j2", "part.j2"]),
    ("inline_content_syntax", replace("experiments/prompts/fewshot.yaml", "Be {{ tone }}",
                                      "Be {{ tone"), [],
     ["experiments/prompts/fewshot.yaml", "syntax error"]),
    ("db_in_missing_directory", nothing, ["--db", "/nonexistent-promptlab-dir/x/results.db"],
     ["--db", "does not exist"]),
    ("experiments_dir_missing", nothing, ["--experiments", "no-such-dir"],
     ["no-such-dir/config.yaml"]),
    # Found by the newcomer review: the base_url was silently replaced by the started
    # server's, so calls meant for a server the user runs went to another.
    ("base_url_with_managed_server", append(MODEL, "server: {kind: mock}\n"),
     ["models.oa.base_url=http://127.0.0.1:9/v1"],
     ["models.oa.base_url is not used", "models.oa.server=null", "{port}"]),
]

CASES = [*ORIGINAL, *DATASETS, *YAML_URLS_HEADERS, *RANGES, *NAMES, *WORDS, *TEMPLATES_AND_CLI]


def test_the_table_is_large_and_names_are_unique() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "edit", "args", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_sends_nothing(
        name: str, edit: Edit, args: list[str], expected: list[str],
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    edit(project)
    monkeypatch.chdir(project)
    code = main(["run", "--db", str(project / "results.db"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    line = err.strip()
    for fragment in expected:
        if fragment.startswith("!"):
            assert fragment[1:] not in line, line
        else:
            assert fragment in line, line
    assert "Traceback" not in err
    assert mock_server.request_count == 0


@pytest.mark.parametrize(("override", "expected"), [
    ("run.batch_size=0", "run.batch_size: 0 is out of range"),
    ("run.backoff_max_s=-1", "run.backoff_max_s: -1"),
    ("run.cache=sometimes", "use off, read or readwrite"),
    ("run.concurency=8", "did you mean run.concurrency"),
])
def test_resume_checks_its_run_overrides_before_sending(
        override: str, expected: str, project: Path, mock_server: MockServer,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    db = str(project / "results.db")
    assert main(["run", "--db", db, "--no-progress", "run.max_calls=2"]) == 1  # budget stop
    sent = mock_server.request_count
    capsys.readouterr()
    assert main(["resume", "latest", "--db", db, "--no-progress", override]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert "experiments/run/" not in err  # the override is named, not a file it never set
    assert mock_server.request_count == sent


def test_a_judge_model_file_with_broken_yaml_is_one_line(
        project: Path, mock_server: MockServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    (project / "templates/judge.j2").write_text("PASS: {{ output }}")
    (project / "experiments/models/grader.yaml").write_text("model: [unclosed\n")
    cfg = project / "experiments/config.yaml"
    cfg.write_text(cfg.read_text() + "scorers:\n  judged:\n    type: judge\n"
                                     "    model: grader\n    template: judge.j2\n")
    assert main(["run", "--db", "j.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "grader.yaml" in err and "Traceback" not in err
    assert mock_server.request_count == 0


def test_no_experiments_directory_is_a_user_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    assert "experiments/config.yaml" in capsys.readouterr().err


def test_cfg_job_prints_the_composed_config(project: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str],
                                            mock_server: MockServer) -> None:
    monkeypatch.chdir(project)
    assert main(["run", "--cfg", "job", "run.concurrency=64", "models=[an]"]) == 0
    out = capsys.readouterr().out
    assert "concurrency: 64" in out and "an:" in out and "oa:" not in out
    assert mock_server.request_count == 0
