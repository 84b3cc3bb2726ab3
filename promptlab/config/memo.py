"""An experiment's validated config, remembered between commands (issue 16, start-up).

Importing Hydra and OmegaConf, Hydra's plugin scan, its compose and the validation take
some 0.3-0.4 s of every `run` and `plan` on a 2-core machine, the same each time for the
same files and overrides. The validated config and Hydra's group choices are kept in a
small JSON file named by a hash of everything the composition and the validation read:

- every directory and file under the experiments directory: a ``.yaml`` file by its
  content, any other file by its size and modification time (Hydra reads only
  ``.yaml``; directories are the config groups);
- the config's name and the command-line overrides;
- the code that composes and validates: promptlab's `config/` modules, the ``__init__``
  of Hydra, OmegaConf and PyYAML, every file of the installed Hydra plugins (their size
  and time: an upgrade rewrites them). Validation reads nothing but the composition (the
  schema, its rules and checks).

Only what is known to depend on nothing else is kept. Never kept:

- an interpolation (``${...}``) anywhere, in a YAML file or an override: it may read the
  environment or the clock (``oc.env``, Hydra's ``now``), in a value or in a defaults
  list; nor a YAML escape that spells ``$`` or ``{``, or a ``$`` before a line break;
- a config read from anywhere but the experiments directory's own files (its defaults
  list and search path, as Hydra composed them): ``hydra.searchpath``, a plugin's search
  path or ConfigStore entry, a group option or package reached with ``..``;
- overrides addressed to Hydra itself (``hydra/launcher=...``), ``..`` or ``shuffle(``
  in an override;
- a composition Hydra warned about (a recalled one would not warn again), or one whose
  files changed while Hydra read them;
- a secret: a secret setting's value (a header such as ``Authorization``, a key in a
  URL or a param; see `promptlab.redaction`) or a password in a URL.

Whatever goes wrong in here (a file that cannot be read, a name that cannot be hashed, a
setting that cannot be parsed) makes a miss, never a failed command.

Where: ``$PROMPTLAB_CACHE_DIR/compose`` (an empty value turns it off), else
``$XDG_CACHE_HOME/promptlab/compose``, else ``~/.cache/promptlab/compose``: a directory of
the user's own that nobody else may write (else the memo is off), holding files of the
user's own (else a miss). At most `KEEP` entries are kept, the least recently used
removed first; a file that cannot be read or written is a miss, never an error.
"""

from __future__ import annotations

import contextlib
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

__all__ = ["KEEP", "key", "read_only_here", "recall", "remember", "storable"]

FORMAT = 4  # bump when what is stored, or how it is keyed, changes
KEEP = 256
_MAX_FILES = 2_000  # a directory this large is not an experiments directory: no memo
_MAX_BYTES = 4_000_000  # a memo larger than this was not written here
# In a YAML file: an interpolation, the escapes of a double-quoted string that spell its
# "$" or "{", and a "$" before an escaped line break (joined to the next line's "{").
_NOT_KEPT = re.compile(rb"\$\{|\\(?:x24|x7b|u0024|u007b|U00000024|U0000007b)|\$\\[\r\n]",
                       re.IGNORECASE)
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
    """What composes and validates, by its files' size and time (no version lookup:
    reading installed metadata costs ~0.1 s); OSError when it cannot be listed."""
    here = Path(__file__).parent
    parts = [_stat_of(str(here / name)) for name in sorted(os.listdir(here))
             if name.endswith(".py")]
    for name in ("hydra", "omegaconf", "yaml"):
        spec = find_spec(name)
        parts.append(_stat_of(spec.origin if spec else None))
    spec = find_spec("hydra_plugins")  # a namespace package: found, not imported
    for entry in sorted(spec.submodule_search_locations or ()) if spec else ():
        for root, dirs, files in os.walk(entry, onerror=_raise):
            dirs.sort()
            parts.extend(_stat_of(os.path.join(root, f)) for f in sorted(files)
                         if f.endswith(".py"))
    return parts


def _raise(error: OSError) -> None:
    raise error


def key(config_dir: Path, config_name: str, overrides: tuple[str, ...]) -> str | None:
    """The name of this composition's memo; None when it is not to be kept."""
    if _cache_dir() is None or hydra_overrides(overrides) or any(
            "${" in o or ".." in o or "shuffle(" in o for o in overrides):
        return None
    try:
        return _hash(config_dir, config_name, overrides)
    except Exception:  # noqa: BLE001 - a name or file that cannot be hashed: a miss
        return None


def _hash(config_dir: Path, config_name: str, overrides: tuple[str, ...]) -> str | None:
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, sys.version, str(config_dir), config_name, list(overrides),
                         _code()]).encode())
    seen = 0
    for root, dirs, files in os.walk(config_dir, followlinks=True, onerror=_raise):
        dirs.sort()
        h.update(b"\0dir\0%s\0" % os.fsencode(os.path.relpath(root, config_dir)))
        for name in sorted(files):
            seen += 1
            if seen > _MAX_FILES:
                return None
            path = os.path.join(root, name)
            rel = os.fsencode(os.path.relpath(path, config_dir))  # any bytes a name has
            if name.endswith(".yaml"):
                content = _read_file(path)
                if content is None or _NOT_KEPT.search(content):
                    return None
                h.update(b"\0%s\0%d\0" % (rel, len(content)))
                h.update(content)
            else:
                h.update(b"\0%s\0%s\0" % (rel, os.fsencode(_stat_of(path))))
    return h.hexdigest()


def _read_file(path: str | Path, owned: bool = False) -> bytes | None:
    """A regular file's bytes (if `owned`, only the user's own); never blocks on a pipe."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if owned:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_BYTES or (
                owned and not _own(st)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def read_only_here(config_dir: Path, read: list[str], sources: list[Any]) -> bool:
    """Whether a composition read only the experiments directory's own files: `read` is
    its defaults list (config paths), `sources` the search path Hydra used. Hydra's own
    configs (``hydra/...``, from its package or the ConfigStore) shape only the node that
    is dropped. False when anything cannot be looked at."""
    try:
        return _only_here(Path(config_dir).resolve(), read, sources)
    except Exception:  # noqa: BLE001 - what cannot be judged is not kept
        return False


def _only_here(here: Path, read: list[str], sources: list[Any]) -> bool:
    for source in sources:
        if not isinstance(source, dict):
            return False
        if (source.get("schema"), source.get("path")) in (("pkg", "hydra.conf"),
                                                          ("structured", "")):
            continue  # Hydra's own configs; the ConfigStore (its entries checked below)
        if source.get("schema") != "file" or Path(str(source.get("path"))).resolve() != here:
            return False
    for path in read:
        if path.startswith("hydra/"):
            continue
        if ".." in Path(path).parts or not (here / f"{path}.yaml").is_file():
            return False  # out of the directory, or a ConfigStore entry
    return True


def storable(composed: dict[str, Any], validated: dict[str, Any]) -> bool:
    """Whether a composition may be kept: no interpolation, no secret."""
    try:
        return (not _holds(composed, lambda s: "${" in s)
                and redact_config(validated) == validated
                and not _holds(validated, lambda s: _PASSWORD.search(s) is not None))
    except Exception:  # noqa: BLE001 - what cannot be judged is not kept
        return False


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
        text = _read_file(path, owned=True)
        kept = json.loads(text) if text is not None else None
    except (OSError, ValueError, RecursionError):
        return None
    if (not isinstance(kept, dict) or kept.get("format") != FORMAT
            or not isinstance(kept.get("choices"), dict)
            or not isinstance(kept.get("validated"), dict)):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: kept longest (a read-only cache still serves)
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
