"""The config's value rules, suggestions and formats, checked directly on `validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from promptlab.config.checks import url_problem
from promptlab.config.loading import load, validate
from promptlab.config.paths import lookup, split_key
from promptlab.config.rules import BOOLEAN_WORDS, CHOICES, ORDERED, RANGES, Range
from promptlab.config.suggest import closest
from promptlab.errors import ConfigError


def config_with(pattern: str, value: Any) -> dict[str, Any]:
    """The smallest valid config that sets `pattern` (``*`` as the name x) to `value`."""
    parts = pattern.replace("*", "x").split(".")
    root: dict[str, Any] = {}
    node = root
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        required = {"models": {"model": "m"}, "scorers": {"type": "exact"}}
        node.update(required.get(parts[i - 1], {}) if i else {})
    node[parts[-1]] = value
    return root


def check(config: dict[str, Any], tmp_path: Path, *overrides: str) -> dict[str, Any]:
    return validate(OmegaConf.create(config), {}, tmp_path, overrides)


def test_every_pattern_in_the_tables_names_a_setting() -> None:
    patterns = [r.pattern for r in RANGES] + [k for pair in ORDERED for k in pair]
    patterns += [*CHOICES, *BOOLEAN_WORDS]
    for pattern in patterns:
        assert lookup(split_key(pattern.replace("*", "x").replace("x.role", "0.role"))) is None, \
            pattern


def _edges(rule: Range) -> tuple[list[float], list[float]]:
    """Values the rule accepts and values it refuses (whole numbers fit int settings too)."""
    if rule.low is None:
        return [0, -5, 1e9], [float("nan"), float("inf")]
    if rule.above:
        return [rule.low + 0.5, rule.low + 10], [rule.low, rule.low - 1, float("nan")]
    return [rule.low, rule.low + 1], [rule.low - 1, float("inf")]


@pytest.mark.parametrize("rule", RANGES, ids=[r.pattern for r in RANGES])
def test_each_range_accepts_its_bound_and_refuses_beyond_it(rule: Range, tmp_path: Path) -> None:
    ok, bad = _edges(rule)
    key = rule.pattern.replace("*", "x")
    for value in ok:
        config = config_with(rule.pattern, value)
        if key == "run.backoff_max_s":  # and the cap may not be below the base
            config["run"]["backoff_base_s"] = 0
        check(config, tmp_path)
    for value in bad:
        with pytest.raises(ConfigError, match=rf"{key}: "):
            check(config_with(rule.pattern, value), tmp_path)


def test_backoff_cap_may_not_be_below_the_base(tmp_path: Path) -> None:
    check({"run": {"backoff_base_s": 1.0, "backoff_max_s": 1.0}}, tmp_path)
    with pytest.raises(ConfigError, match=r"run.backoff_max_s: 0.5 is less than run.backoff_base"):
        check({"run": {"backoff_base_s": 1.0, "backoff_max_s": 0.5}}, tmp_path)


def test_yaml_off_means_cache_off_and_no_fallback(tmp_path: Path) -> None:
    config = check({"run": {"cache": False},
                    "models": {"m": {"model": "x", "server": {"kind": "mock",
                                                               "fallback": False}}}}, tmp_path)
    assert config["run"]["cache"] == "off"
    assert config["models"]["m"]["server"]["fallback"] is None


def test_cache_off_unquoted_in_a_run_file_loads(project: Path) -> None:
    (project / "experiments/run/fast.yaml").write_text("cache: off\nprogress: no\n")
    assert load(project / "experiments").config["run"]["cache"] == "off"


@pytest.mark.parametrize("key", ["name", "run.cache", "models.m.provider", "models.m.headers.X"])
def test_a_yaml_boolean_in_a_text_setting_is_refused_with_quote_it(key: str,
                                                                   tmp_path: Path) -> None:
    config: dict[str, Any] = {"models": {"m": {"model": "x"}}}
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = True
    with pytest.raises(ConfigError, match=rf"{key}: YAML reads an unquoted on, yes or true"):
        check(config, tmp_path)


def test_an_error_in_a_key_an_override_set_names_the_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^run.batch_size=0: run.batch_size: 0 is out"):
        check({"run": {"batch_size": 0}}, tmp_path, "run.batch_size=0")
    with pytest.raises(ConfigError, match=r"^\S*config.yaml: run.batch_size: 0 is out"):
        check({"run": {"batch_size": 0}}, tmp_path, "run.concurrency=3")


@pytest.mark.parametrize("url", [
    "https://api.openai.com/v1", "http://127.0.0.1:11434/v1", "http://127.0.0.1:{port}/v1",
    "http://[::1]:8080/v1", "https://generativelanguage.googleapis.com",
])
def test_good_base_urls_pass(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(("url", "fragment"), [
    ("localhost:8080/v1", "e.g. http://localhost:8080/v1"),
    ("http//x/v1", "e.g. http://x/v1"),
    ("https:/x/v1", "e.g. https://x/v1"),
    ("http://x/v 1", "space"),
    ("http://x:port/v1", "bad port"),
    ("ws://x/v1", "uses ws:"),
    ("/v1", "not an http(s) URL"),
])
def test_bad_base_urls_say_how_to_write_them(url: str, fragment: str) -> None:
    problem = url_problem(url)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(("word", "options", "expected"), [
    ("concurency", ["concurrency", "timeout_s"], "concurrency"),
    ("Temperature", ["temperature"], "temperature"),
    ("nope", ["an", "oa"], None),
])
def test_closest(word: str, options: list[str], expected: str | None) -> None:
    assert closest(word, options) == expected
