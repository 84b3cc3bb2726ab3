"""The seams docs/architecture.md promises, checked on the source: who may import what."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "promptlab"

# A third-party library, and the only folder of promptlab allowed to import it.
OWNERS = {"sqlalchemy": "store", "alembic": "store", "omegaconf": "config", "hydra": "config"}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        if "migrations" in f.parts:
            continue
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(name: str, path: Path) -> list[str]:
    """Every module imported (at any depth, outside `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and "TYPE_CHECKING" in ast.unparse(node.test)
               for sub in node.body for n in ast.walk(sub)}
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(base[: len(base) - node.level + 1] + [module]).strip(".")
            found.append(module)
            found += [f"{module}.{a.name}" for a in node.names]
    return found


def test_third_party_engines_stay_behind_their_seams() -> None:
    leaks = []
    for name, path in _modules().items():
        for imported in _imports(name, path):
            owner = OWNERS.get(imported.split(".")[0])
            if owner is not None and not name.startswith(f"promptlab.{owner}"):
                leaks.append(f"{name} imports {imported} (only promptlab.{owner} may)")
    assert leaks == []


def test_no_import_cycles_among_promptlab_modules() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(name, path):
            parts = imported.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            dep = ".".join(parts)
            # A package re-exporting its own submodules is not a cycle.
            if dep and dep != name and not dep.startswith(name + "."):
                deps.add(dep)
        graph[name] = deps
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(trail[trail.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_module_passes_four_hundred_lines() -> None:
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_run_settings_have_one_shape_in_the_schema_and_the_spec() -> None:
    import dataclasses

    from promptlab.config.schema import RunConfig
    from promptlab.spec import RunSettings

    def shape(cls: type) -> dict[str, object]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    assert shape(RunConfig) == shape(RunSettings)
