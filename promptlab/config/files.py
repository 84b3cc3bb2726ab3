"""The experiments directory's files: how errors name them, what options a group has, and
which file Hydra could not read when its own error does not say."""

from __future__ import annotations

from pathlib import Path

__all__ = ["display", "find_unreadable", "groups", "options", "printable"]


def display(path: Path) -> str:
    """A path relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def printable(text: str) -> str:
    """Text fit for a one-line message: line breaks and other control characters escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def groups(config_dir: Path) -> list[str]:
    """The config groups: the folders of the experiments directory."""
    if not config_dir.is_dir():
        return []
    return sorted(p.name for p in config_dir.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")))


def options(config_dir: Path, group: str) -> list[str]:
    """A group's options: the names of the YAML files in its folder."""
    folder = config_dir / group
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml"))


def find_unreadable(config_dir: Path) -> str | None:
    """`file: problem; fix` for the first YAML file that is not UTF-8 or whose top level is
    not a mapping, else None."""
    import yaml

    for path in sorted(config_dir.rglob("*.yaml")):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            return (f"{display(path)}: not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
                    "save it as UTF-8")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # Hydra reports syntax errors itself, with the file
        if value is not None and not isinstance(value, dict):
            kind = "a list" if isinstance(value, list) else f"the value {value!r}"
            return (f"{display(path)}: the file holds {kind}; a config file is a mapping of "
                    "settings (key: value lines)")
    return None
