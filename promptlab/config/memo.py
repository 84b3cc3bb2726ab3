"""An experiment's validated config, remembered between commands (issue 16, start-up).

Importing Hydra and OmegaConf, Hydra's plugin scan, its compose and the validation take
some 0.3-0.4 s of every `run` and `plan` on a 2-core machine, the same each time for the
same files and overrides. The validated config and Hydra's group choices are kept in a
small JSON file named by a hash of everything the composition and the validation read:

- every file under the experiments directory: a YAML file by its content, any other by
  its size and modification time (Hydra reads only YAML; names list a group's options);
- the config's name and the command-line overrides;
- the code that composes and validates (promptlab's `config/` modules, Hydra's and
  OmegaConf's packages: their files' size and time), and the installed Hydra plugins'
  names. Validation reads nothing but the composition (the schema, its rules and checks).

Only what is known to depend on nothing else is kept. Never kept:

- an interpolation (``${...}``) anywhere, in a YAML file or an override: it may read the
  environment or the clock (``oc.env``, Hydra's ``now``), in a value or in a defaults
  list, and a YAML escape (``\\x``, ``\\u``, a backslash at a line's end) could spell one;
- anything read from outside the experiments directory: ``hydra.searchpath``, a group
  option reached with ``..``;
- overrides addressed to Hydra itself (``hydra/launcher=...``) and ``shuffle(...)``;
- a composition Hydra warned about (a recalled one would not warn again), or one whose
  files changed while Hydra read them;
- a secret: a secret setting's value (a header such as ``Authorization``, a key in a
  URL or a param; see `promptlab.redaction`) or a password in a URL.

Where: ``$PROMPTLAB_CACHE_DIR/compose`` (an empty value turns it off), else
``$XDG_CACHE_HOME/promptlab/compose``, else ``~/.cache/promptlab/compose``: a directory of
the user's own that nobody else may write (else the memo is off), holding files of the
user's own (else a miss). At most `KEEP` entries are kept, the least recently used
removed first; a file that cannot be read or written is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from promptlab.config.overrides import hydra_overrides
from promptlab.redaction import redact_config

__all__ = ["KEEP", "key", "recall", "remember", "storable"]

FORMAT = 3  # bump when what is stored, or how it is keyed, changes
KEEP = 256
_MAX_FILES = 2_000  # a directory this large is not an experiments directory: no memo
_MAX_BYTES = 4_000_000  # a memo larger than this was not written here
_YAML = (".yaml", ".yml")
# In a YAML file: an interpolation, a path out of the directory, and the escapes that
# could spell either in a double-quoted string.
_NOT_KEPT = (b"${", b"../", b"\\x", b"\\u", b"\\U", b"\\\n", b"\\\r")
_PASSWORD = re.compile(r"://[^/?#@\s]*:[^/?#@\s]*@")  # scheme://user:password@host


def _cache_dir() -> Path | None:
    given = os.environ.get("PROMPTLAB_CACHE_DIR")
    if given is not None:
        return Path(given) / "compose" if given else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "promptlab" / "compose"


def _own(st: os.stat_result) -> bool:
    """The user's own, and writable by nobody else."""
    uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
    return st.st_uid == uid and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


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
    """The name of this composition's memo; None when it is not to be kept."""
    if _cache_dir() is None or hydra_overrides(overrides) or any(
            "${" in o or ".." in o or "shuffle(" in o for o in overrides):
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
            rel = os.fsencode(os.path.relpath(path, config_dir))  # any bytes a name has
            if name.endswith(_YAML):
                try:
                    with open(path, "rb") as f:
                        content = f.read()
                except OSError:
                    return None  # composing will say what is wrong with it
                if any(mark in content for mark in _NOT_KEPT):
                    return None
                h.update(b"\0%s\0%d\0" % (rel, len(content)))
                h.update(content)
            else:
                h.update(b"\0%s\0%s\0" % (rel, os.fsencode(_stat_of(path))))
    return h.hexdigest()


def storable(composed: dict[str, Any], validated: dict[str, Any]) -> bool:
    """Whether a composition may be kept: no interpolation, no secret."""
    return (not _holds(composed, lambda s: "${" in s)
            and redact_config(validated) == validated
            and not _holds(validated, lambda s: _PASSWORD.search(s) is not None))


def _holds(value: Any, test: Any) -> bool:
    if isinstance(value, str):
        return bool(test(value))
    if isinstance(value, dict):
        return any(_holds(k, test) or _holds(v, test) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds(v, test) for v in value)
    return False


def _usable() -> Path | None:
    """The memo directory, if it is the user's own (it need not exist yet)."""
    where = _cache_dir()
    if where is None:
        return None
    try:
        st = os.stat(where)
    except FileNotFoundError:
        return where
    except OSError:
        return None
    return where if stat.S_ISDIR(st.st_mode) and _own(st) else None


def recall(name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The remembered (choices, validated config), or None."""
    where = _usable()
    if where is None:
        return None
    path = where / f"{name}.json"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _own(st) or st.st_size > _MAX_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            kept = json.loads(f.read())
        os.utime(path)  # recently used: kept longest
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)
    if (not isinstance(kept, dict) or kept.get("format") != FORMAT
            or not isinstance(kept.get("choices"), dict)
            or not isinstance(kept.get("validated"), dict)):
        return None
    return kept["choices"], kept["validated"]


def remember(name: str, choices: dict[str, Any], validated: dict[str, Any]) -> None:
    """Keep a validated config; quietly nothing when it would not come back the same from
    JSON (a YAML key that is not a string, a NaN) or the directory cannot be written."""
    where = _usable()
    if where is None:
        return
    kept = {"format": FORMAT, "choices": choices, "validated": validated}
    try:
        text = json.dumps(kept, ensure_ascii=False)
        if json.loads(text) != kept:
            return
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _usable() is None:  # made meanwhile by someone else
            return
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".", suffix=".tmp")  # mode 0600
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
