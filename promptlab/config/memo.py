"""Hydra's composition of an experiment, remembered between commands (issue 16, start-up).

Importing Hydra and OmegaConf, Hydra's plugin scan, its compose and the validation take
some 0.3-0.4 s of every `run` and `plan` on a 2-core machine, the same each time for the
same files and overrides. The composed config (interpolations unresolved), Hydra's group
choices and the validated config are kept in a small JSON file named by a hash of
everything the composition reads:

- every file under the experiments directory: a YAML file by its content, any other by
  its size and modification time;
- the config's name and the command-line overrides;
- the code that composes and validates (promptlab's `config/` modules, Hydra's and
  OmegaConf's packages: their files' size and time), and the installed Hydra plugins'
  names.

Validation reads nothing but the composition (the schema, its rules and checks), so a
recalled validated config is the one validation would give. When the composition holds
an interpolation (``${oc.env:...}``, resolved at validation), only the composition is
kept and validation runs every time. Not remembered at all: a composition when an
override addresses Hydra itself (`hydra/launcher=...`), when a config extends Hydra's
search path (`hydra.searchpath`, which reads files elsewhere), when Hydra warned (the
warning would not be shown again), and when the config holds a secret setting's value
(a header such as ``Authorization``, a key in a URL or a param; see
`promptlab.redaction`): the file keeps nothing the results database would not.

Where: ``$PROMPTLAB_CACHE_DIR/compose`` (an empty value turns it off), else
``$XDG_CACHE_HOME/promptlab/compose``, else ``~/.cache/promptlab/compose``. At most
`KEEP` entries are kept, the least recently used removed first; a file that cannot be
read or written is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from promptlab.config.overrides import hydra_overrides

__all__ = ["KEEP", "interpolated", "key", "recall", "remember"]

FORMAT = 2  # bump when what is stored, or how it is keyed, changes
KEEP = 256
_MAX_FILES = 2_000  # a directory this large is not an experiments directory: no memo
_YAML = (".yaml", ".yml")


def _cache_dir() -> Path | None:
    given = os.environ.get("PROMPTLAB_CACHE_DIR")
    if given is not None:
        return Path(given) / "compose" if given else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "promptlab" / "compose"


def _stat_of(path: str | None) -> str:
    if path is None:
        return "-"
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _code() -> list[str]:
    """What composes and validates: promptlab's config modules, Hydra and OmegaConf, by
    their files' size and time (no version lookup: reading installed metadata costs ~0.1
    s), and the installed Hydra plugins by name (a plugin may add configs)."""
    here = Path(__file__).parent
    parts = [_stat_of(str(here / name)) for name in sorted(os.listdir(here))
             if name.endswith(".py")]
    for name in ("hydra", "omegaconf"):
        spec = find_spec(name)
        parts.append(_stat_of(spec.origin if spec else None))
    for entry in sys.path:
        plugins = os.path.join(entry or ".", "hydra_plugins")
        if os.path.isdir(plugins):
            try:
                parts.append(f"{plugins}:{sorted(os.listdir(plugins))}")
            except OSError:
                return []
    return parts


def key(config_dir: Path, config_name: str, overrides: tuple[str, ...]) -> str | None:
    """The name of this composition's memo; None when it is not to be remembered."""
    if _cache_dir() is None:
        return None
    if hydra_overrides(overrides):
        return None
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, sys.version, str(config_dir), config_name, list(overrides),
                         _code()]).encode())
    seen = 0
    for root, dirs, files in os.walk(config_dir, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            seen += 1
            if seen > _MAX_FILES:
                return None
            path = os.path.join(root, name)
            rel = os.path.relpath(path, config_dir)
            if name.endswith(_YAML):
                try:
                    with open(path, "rb") as f:
                        content = f.read()
                except OSError:
                    return None  # composing will say what is wrong with it
                if b"searchpath" in content:
                    return None
                h.update(f"\0{rel}\0{len(content)}\0".encode())
                h.update(content)
            else:
                h.update(f"\0{rel}\0{_stat_of(path)}\0".encode())
    return h.hexdigest()


def recall(name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None] | None:
    """The remembered (choices, composed config, validated config or None), or None."""
    where = _cache_dir()
    if where is None:
        return None
    path = where / f"{name}.json"
    try:
        with open(path, encoding="utf-8") as f:
            kept = json.load(f)
        os.utime(path)  # recently used: kept longest
    except (OSError, ValueError):
        return None
    if (not isinstance(kept, dict) or kept.get("format") != FORMAT
            or not isinstance(kept.get("choices"), dict)
            or not isinstance(kept.get("config"), dict)
            or not isinstance(kept.get("validated"), dict | None)):
        return None
    return kept["choices"], kept["config"], kept["validated"]


def remember(name: str, choices: dict[str, Any], config: dict[str, Any],
             validated: dict[str, Any] | None = None) -> None:
    """Keep a composition (and its validated config, if given); quietly nothing when it
    would not come back the same from JSON (a YAML key that is not a string, a NaN) or
    the directory cannot be written."""
    where = _cache_dir()
    if where is None:
        return
    kept = {"format": FORMAT, "choices": choices, "config": config, "validated": validated}
    try:
        text = json.dumps(kept, ensure_ascii=False)
        if json.loads(text) != kept:
            return
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, where / f"{name}.json")
        except BaseException:
            os.unlink(tmp)
            raise
        _prune(where)
    except (OSError, ValueError, TypeError, RecursionError):
        return


def interpolated(value: Any) -> bool:
    """Whether a composed config holds an interpolation (``${...}``), anywhere: resolved
    at validation, it may read the environment, so its validated config is not kept."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(interpolated(k) or interpolated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(interpolated(v) for v in value)
    return False


def _prune(where: Path) -> None:
    entries = []
    for entry in os.scandir(where):
        if entry.name.endswith(".json"):
            try:
                entries.append((entry.stat().st_mtime_ns, entry.path))
            except OSError:
                continue
    if len(entries) <= KEEP:
        return
    entries.sort()
    for _, path in entries[:len(entries) - KEEP]:
        try:
            os.unlink(path)
        except OSError:
            continue
