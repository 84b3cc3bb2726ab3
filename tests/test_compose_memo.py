"""An experiment's validated config, remembered between commands (promptlab.config.memo):
a recalled config is the composed one, a change to anything the composition reads
composes again, and what is not to be kept is not: interpolations (the environment, the
clock), files outside the experiments directory, Hydra's own overrides, warnings, files
changed while read, secrets; a memo file that is not the user's own is not read."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import write

from promptlab.config import loading, memo
from promptlab.config.loading import load
from promptlab.errors import ConfigError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("PROMPTLAB_CACHE_DIR", str(where))
    return where / "compose"


def _memos(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.json")) if cache.is_dir() else []


def _no_hydra(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("composed with Hydra, not recalled")

    monkeypatch.setattr(loading, "_compose", refuse)


def test_a_recalled_composition_is_the_composed_one(project: Path, cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    experiments = project / "experiments"
    first = load(experiments, ["run.concurrency=3", "models=[oa]"])
    assert len(_memos(cache)) == 1
    _no_hydra(monkeypatch)
    again = load(experiments, ["run.concurrency=3", "models=[oa]"])
    assert again == first
    assert again.config["run"]["concurrency"] == 3 and list(again.config["models"]) == ["oa"]
    assert again.choices == first.choices and again.choices["dataset"] == "rows"


def test_other_overrides_and_changed_files_compose_again(project: Path, cache: Path) -> None:
    experiments = project / "experiments"
    base = load(experiments)
    assert load(experiments, ["run.concurrency=5"]).config["run"]["concurrency"] == 5
    assert load(experiments).config["run"]["concurrency"] == base.config["run"]["concurrency"]
    # An edited value, of the same length as before: content, not size or time, decides.
    model = experiments / "models/oa.yaml"
    model.write_text(model.read_text().replace("mock-small", "mock-smoll"))
    assert load(experiments).config["models"]["oa"]["model"] == "mock-smoll"
    # A new option in a group, then the same option removed again.
    write(experiments / "models/third.yaml", """
        # @package models.third
        provider: openai
        model: mock-third
        base_url: http://127.0.0.1:9/v1
        """)
    third = load(experiments, ["models=[third]"])
    assert third.config["models"]["third"]["model"] == "mock-third"
    (experiments / "models/third.yaml").unlink()
    with pytest.raises(ConfigError, match="third"):
        load(experiments, ["models=[third]"])
    assert len(_memos(cache)) == 4


def test_the_code_that_composes_and_validates_is_in_the_key() -> None:
    """A recalled validated config is what today's schema and checks would make: every
    module of promptlab.config (schema, rules, checks, shapes ...) is in the key, and
    Hydra's and OmegaConf's packages."""
    import promptlab.config

    here = Path(promptlab.config.__file__).parent
    code = " ".join(memo._code())
    for module in ("schema", "rules", "checks", "shapes", "loading", "overrides", "memo"):
        assert f"{here / module}.py:" in code
    assert "/hydra/__init__.py:" in code and "/omegaconf/__init__.py:" in code


def test_a_literal_secret_is_never_written(project: Path, cache: Path) -> None:
    experiments = project / "experiments"
    model = experiments / "models/oa.yaml"
    model.write_text(model.read_text() + "headers:\n  Authorization: Bearer sk-literal-9f3k\n")
    loaded = load(experiments)
    assert loaded.config["models"]["oa"]["headers"]["Authorization"].endswith("9f3k")
    assert _memos(cache) == []
    load(experiments, ["+models.oa.params.api_key=sk-param-77ab", "run.concurrency=2"])
    assert _memos(cache) == []
    # The same project without the header is remembered, and holds nothing secret.
    model.write_text(model.read_text().replace("headers:\n  Authorization: Bearer "
                                               "sk-literal-9f3k\n", ""))
    load(experiments)
    [kept] = _memos(cache)
    assert "sk-" not in kept.read_text()


def test_hydra_overrides_and_warnings_are_not_remembered(
        project: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    experiments = project / "experiments"
    load(experiments, ["hydra.job.chdir=false"])
    assert _memos(cache) == []

    import hydra

    real = hydra.compose

    def warning_compose(*args: object, **kwargs: object) -> object:
        warnings.warn("a warning from Hydra", UserWarning, stacklevel=1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hydra, "compose", warning_compose)
    with pytest.warns(UserWarning, match="a warning from Hydra"):
        load(experiments)
    with warnings.catch_warnings(record=True) as again:  # once a process, as Hydra's own
        warnings.simplefilter("default")
        load(experiments)
    assert again == []
    monkeypatch.setattr(loading, "_SHOWN", set())  # the next process: shown again
    with pytest.warns(UserWarning, match="a warning from Hydra"):
        load(experiments)
    with warnings.catch_warnings():  # ignored by the filters: still never kept
        warnings.simplefilter("ignore")
        load(experiments)
    assert _memos(cache) == []


def test_a_damaged_memo_is_a_miss_and_is_written_again(project: Path, cache: Path) -> None:
    experiments = project / "experiments"
    first = load(experiments)
    [kept] = _memos(cache)
    for damage in ("{not json", json.dumps({"format": memo.FORMAT, "choices": [],
                                            "validated": {}}), "", "[" * 100_000):
        kept.write_text(damage)
        assert load(experiments) == first
        assert json.loads(kept.read_text())["validated"]["name"] == "test-exp"


def test_an_empty_cache_dir_setting_turns_it_off(project: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    load(project / "experiments")
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()
    monkeypatch.delenv("PROMPTLAB_CACHE_DIR")
    load(project / "experiments")
    assert len(list((tmp_path / "xdg/promptlab/compose").glob("*.json"))) == 1


def test_an_unwritable_cache_is_no_error(project: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PROMPTLAB_CACHE_DIR", str(blocker))  # compose/ cannot be made in it
    assert load(project / "experiments").config["name"] == "test-exp"


def test_what_json_would_change_is_not_kept_and_old_entries_go(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memo.remember("a" * 64, {}, {"vars": {1: "an int key"}})
    memo.remember("b" * 64, {}, {"x": math.nan})
    assert _memos(cache) == []
    monkeypatch.setattr(memo, "KEEP", 2)
    for i, name in enumerate("cdef"):
        memo.remember(name * 64, {}, {"i": i})
        os.utime(cache / f"{name * 64}.json", ns=(i * 10**9, i * 10**9))
    assert memo.recall("c" * 64) is None  # the least recently used went first
    assert memo.recall("f" * 64) == ({}, {"i": 3})
    assert len(_memos(cache)) == 2


def _imported(project: Path, cache: Path, *more: str) -> list[str]:
    """Which of Hydra and OmegaConf two `load`s in fresh processes imported."""
    code = ("import sys; from promptlab.config.loading import load; "
            "print(load(sys.argv[1] + '/experiments', ['run.concurrency=2']).config['name'], "
            "*(m for m in ('hydra', 'omegaconf') if m in sys.modules))")
    env = {**os.environ, "PROMPTLAB_CACHE_DIR": str(cache.parent), **dict(
        m.split("=", 1) for m in more)}
    return [subprocess.run([sys.executable, "-c", code, str(project)], env=env, check=True,
                           capture_output=True, text=True).stdout.strip() for _ in range(2)]


def test_a_recalled_run_imports_neither_hydra_nor_omegaconf(project: Path,
                                                            cache: Path) -> None:
    """What the memo is for: the command's start-up without them (issue 16)."""
    assert _imported(project, cache) == ["test-exp hydra omegaconf", "test-exp"]


def test_an_interpolation_is_never_kept(project: Path, cache: Path) -> None:
    """An interpolation may read the environment or the clock, in a value or in a defaults
    list (a group chosen by a variable): composed afresh every time."""
    config = project / "experiments/config.yaml"
    plain = config.read_text()
    config.write_text(plain.replace("name: test-exp", "name: ${oc.env:EXP_NAME,fallback}"))
    assert _imported(project, cache, "EXP_NAME=first") == ["first hydra omegaconf"] * 2
    assert _imported(project, cache, "EXP_NAME=second") == ["second hydra omegaconf"] * 2
    write(project / "experiments/run/slow.yaml", "concurrency: 1\n")
    config.write_text(plain.replace("  - run: fast", "  - run: ${oc.env:RUN_CFG,fast}"))
    code = ("import sys; from promptlab.config.loading import load; "
            "print(load(sys.argv[1] + '/experiments').config['run']['concurrency'])")
    seen = [subprocess.run([sys.executable, "-c", code, str(project)], check=True,
                           capture_output=True, text=True,
                           env={**os.environ, "PROMPTLAB_CACHE_DIR": str(cache.parent),
                                "RUN_CFG": choice}).stdout.strip()
            for choice in ("fast", "slow", "fast", "slow")]
    assert seen[1] == seen[3] == "1" and seen[0] == seen[2] != "1"
    # Hydra's own resolvers (registered when Hydra starts) work every time.
    config.write_text(plain.replace("name: test-exp", "name: exp-${now:%Y}"))
    assert load(project / "experiments").config["name"].startswith("exp-20")
    assert load(project / "experiments").config["name"].startswith("exp-20")
    load(project / "experiments", ["name=${oc.env:HOME}"])
    assert _memos(cache) == []


def test_files_outside_the_experiments_directory_are_never_kept(project: Path,
                                                               cache: Path) -> None:
    experiments = project / "experiments"
    shared = write(project / "shared/o.yaml", "concurrency: 3\n")
    assert load(experiments, ["run=../../shared/o"]).config["run"]["concurrency"] == 3
    shared.write_text("concurrency: 5\n")
    assert load(experiments, ["run=../../shared/o"]).config["run"]["concurrency"] == 5
    config = experiments / "config.yaml"
    plain = config.read_text()
    config.write_text(plain.replace("  - run: fast", "  - run: ../../shared/o"))
    assert load(experiments).config["run"]["concurrency"] == 5
    shared.write_text("concurrency: 9\n")
    assert load(experiments).config["run"]["concurrency"] == 9
    # A search path, written plainly or with a YAML escape.
    write(project / "elsewhere/run/far.yaml", "concurrency: 7\n")
    for spelled in ("searchpath", "search\\x70ath"):
        config.write_text(plain.replace("  - run: fast", "  - run: far") + (
            f'hydra:\n  "{spelled}": ["file://{project / "elsewhere"}"]\n'))
        assert load(experiments).config["run"]["concurrency"] == 7
    assert _memos(cache) == []


def test_a_file_changed_while_hydra_reads_it_is_not_kept(project: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    model = project / "experiments/models/oa.yaml"
    real = loading._compose

    def edited_meanwhile(*args: Any) -> Any:
        composed = real(*args)
        model.write_text(model.read_text().replace("mock-small", "mock-edit"))
        return composed

    monkeypatch.setattr(loading, "_compose", edited_meanwhile)
    load(project / "experiments")
    assert _memos(cache) == []


def test_odd_file_names_shuffles_and_passwords(project: Path, cache: Path) -> None:
    experiments = project / "experiments"
    (experiments / os.fsdecode(b"notes-\xff.txt")).write_text("not YAML")
    assert load(experiments).config["name"] == "test-exp"
    assert len(_memos(cache)) == 1
    orders = {tuple(load(experiments, ["grid.params.temperature=shuffle([0.0,0.2,0.4,0.6,0.8,"
                                       "1.0,1.2,1.4])"]).config["grid"]["params"]["temperature"])
              for _ in range(6)}
    assert len(orders) > 1  # shuffled afresh each time
    load(experiments, ["db=postgresql://user:hunter2@127.0.0.1/db"])
    model = experiments / "models/oa.yaml"
    model.write_text(model.read_text().replace("http://", "http://user:hunter2@"))
    load(experiments)
    assert len(_memos(cache)) == 1
    assert "hunter2" not in _memos(cache)[0].read_text()


def test_a_memo_not_the_users_own_is_not_read(project: Path, cache: Path) -> None:
    experiments = project / "experiments"
    load(experiments)
    [kept] = _memos(cache)
    planted = json.loads(kept.read_text())
    planted["validated"]["name"] = "planted"
    kept.write_text(json.dumps(planted))
    assert load(experiments).config["name"] == "planted"  # the user's own file: trusted
    kept.write_text(json.dumps(planted))
    kept.chmod(0o666)  # writable by others
    assert load(experiments).config["name"] == "test-exp"
    cache.chmod(0o777)  # a directory others may write: the memo is off
    kept.write_text(json.dumps(planted))
    kept.chmod(0o600)
    assert load(experiments).config["name"] == "test-exp"
    cache.chmod(0o700)
    kept.unlink()
    os.mkfifo(kept)  # not a file: a miss, and no hang
    assert load(experiments).config["name"] == "test-exp"


def test_a_package_out_of_the_directory_and_configstore_entries_are_never_kept(
        project: Path, cache: Path) -> None:
    experiments = project / "experiments"
    outside = write(project / "run/x.yaml", "concurrency: 3\n")
    config = experiments / "config.yaml"
    config.write_text(config.read_text().replace("  - run: fast", "  - ..@run: run/x"))
    assert load(experiments).config["run"]["concurrency"] == 3
    outside.write_text("concurrency: 5\n")
    assert load(experiments).config["run"]["concurrency"] == 5
    assert _memos(cache) == []

    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="models", name="stored", package="models.stored", node={
        "provider": "openai", "model": "from-configstore", "base_url": "http://127.0.0.1:9/v1"})
    assert load(experiments, ["models=[stored]"]).config["models"]["stored"]["model"] == (
        "from-configstore")
    assert _memos(cache) == []


def test_the_search_path_hydra_used_decides(tmp_path: Path) -> None:
    here = tmp_path.resolve()
    write(here / "models/a.yaml", "model: a\n")
    own = [{"path": "hydra.conf", "schema": "pkg", "provider": "hydra"},
           {"path": str(here), "schema": "file", "provider": "main"},
           {"path": "", "schema": "structured", "provider": "schema"}]
    assert memo.read_only_here(here, ["hydra/launcher/basic", "models/a"], own)
    assert not memo.read_only_here(here, ["models/b"], own)  # no such file: elsewhere
    assert not memo.read_only_here(here, ["../x/models/a"], own)
    plugin = {"path": str(tmp_path / "shared"), "schema": "file", "provider": "a-plugin"}
    assert not memo.read_only_here(here, ["models/a"], [*own, plugin])
    assert not memo.read_only_here(here, ["models/a"], [*own, {"path": "pkg.conf",
                                                               "schema": "pkg"}])


def test_nothing_in_the_memo_fails_a_command(project: Path, cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL that cannot be parsed, a pipe among the configs, a directory made meanwhile,
    code that cannot be listed, a cache that cannot be touched: a miss at worst."""
    experiments = project / "experiments"
    assert memo.storable({}, {"models": {"m": {"base_url": "http://[v1/chat"}}}) is False
    os.mkfifo(experiments / "models/pipe.yaml")  # no config chooses it; never opened
    assert load(experiments).config["name"] == "test-exp"
    assert _memos(cache) == []
    (experiments / "models/pipe.yaml").unlink()
    load(experiments, ["name=foo"])
    (experiments / "name").mkdir()  # now a group: the override is refused, as composed
    with pytest.raises(ConfigError):
        load(experiments, ["name=foo"])
    (experiments / "name").rmdir()
    assert load(experiments, ["name=foo"]).config["name"] == "foo"

    def unlistable() -> list[str]:
        raise PermissionError("a plugin directory")

    with monkeypatch.context() as m:
        m.setattr(memo, "_code", unlistable)
        assert memo.key(experiments, "config", ()) is None
        assert load(experiments).config["name"] == "test-exp"

    def read_only(*args: object) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(os, "utime", read_only)
    name = memo.key(experiments, "config", ("name=foo",))
    assert name is not None and memo.recall(name) is not None
