"""The shape of the code, checked with ``ast`` (no import of the package): no import cycle, no private name
imported across modules, no module over ~300 lines without a reason written at its top, and only
``orchestration/`` (and the Dagster code location: ``assets/``, ``sensors/``) imports Dagster.

Imports inside functions count: a lazy import that closes a cycle is still a cycle. Imports under
``if TYPE_CHECKING:`` do not (they never run)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mm_platform", "assets", "sensors")
MAX_LINES = 300
# A module over MAX_LINES says why in its first docstring, with this phrase.
SIZE_REASON = "Longer than 300 lines because"
DAGSTER_PACKAGES = ("mm_platform.orchestration", "assets", "sensors")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: set[str] = field(default_factory=set)
    private_imports: list[str] = field(default_factory=list)
    imports_dagster: bool = False


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_nodes_with_self(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _runtime_nodes_with_self(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    yield from _runtime_nodes(node)


@cache
def modules() -> dict[str, Module]:
    return scan(REPO_ROOT, PACKAGES)


def scan(root: Path, packages: tuple[str, ...]) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name, is_package = _module_name(root, path)
            found[name] = Module(name, path, is_package)
    for module in found.values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"))
        own_package = module.name if module.is_package else module.name.rpartition(".")[0]
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.imports_dagster |= alias.name.split(".")[0].startswith("dagster")
                    if alias.name in found:
                        module.imports.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = own_package.split(".")[: len(own_package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                module.imports_dagster |= target.split(".")[0].startswith("dagster")
                if target.split(".")[0] not in packages:
                    continue
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in found:
                        module.imports.add(submodule)
                    elif target in found:
                        module.imports.add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target != module.name:
                        module.private_imports.append(f"{module.name} imports {target}.{alias.name}")
    return found


def import_cycles(found: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {name: sorted(m.imports) for name, m in found.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    return sorted(cycles)


def test_no_import_cycle() -> None:
    assert import_cycles(modules()) == []


def test_no_private_name_imported_across_modules() -> None:
    found = sorted(line for m in modules().values() for line in m.private_imports)
    assert found == []


def test_long_modules_say_why() -> None:
    long_without_reason = []
    for module in modules().values():
        text = module.path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if SIZE_REASON not in docstring:
                long_without_reason.append(module.name)
    assert sorted(long_without_reason) == []


def test_only_orchestration_imports_dagster() -> None:
    outside = sorted(
        name
        for name, m in modules().items()
        if m.imports_dagster and not any(name == p or name.startswith(p + ".") for p in DAGSTER_PACKAGES)
    )
    assert outside == []


def test_the_checker_sees_a_planted_cycle_and_private_import(tmp_path: Path) -> None:
    """The checks above can fail: planted code with a lazy-import cycle, a private import and a guarded import."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import _hidden\n")
    (package / "b.py").write_text("def f():\n    from pkg import a\n\n_hidden = 1\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    found = scan(tmp_path, ("pkg",))
    assert import_cycles(found) == [["pkg.a", "pkg.b"]]
    assert found["pkg.a"].private_imports == ["pkg.a imports pkg.b._hidden"]
    assert found["pkg.c"].imports == set()
