"""The package's layout, checked statically: every module of ``tower_zoo`` is parsed with ``ast`` (nothing is
imported, so no TensorFlow, and the test takes well under a second).

1. No import circle among tower_zoo modules. Both module-level imports and imports inside functions count: a
   function-level import only defers a circle to call time, the two modules still depend on each other. An
   import depends on the module it names (``from tower_zoo.data.schema import files`` -> ``...schema.files``;
   ``from tower_zoo.data.schema import load_schema`` -> the package ``tower_zoo.data.schema``) and, as Python
   runs them first, on the ``__init__`` of every package above it that does not also hold the importer
   (``tower_zoo.models.base`` importing ``tower_zoo.data.schema.spec`` depends on ``tower_zoo.data`` and
   ``tower_zoo.data.schema``, not on ``tower_zoo``). So a package ``__init__`` re-exporting its own modules is
   not a circle, but two sub-packages importing each other's modules are when either ``__init__`` re-exports.
2. No module imports another module's private (``_``-prefixed) name, nor reads one as an attribute of an
   imported tower_zoo module (``runs._settings``). Importing a public name under a private alias is fine.
3. ``tower_zoo/data/`` holds only ``__init__.py`` and its sub-packages (one concern each), and a sub-package
   imports only those before it in the data flow (``DATA_FLOW``).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "tower_zoo"
# The data flow: each sub-package of tower_zoo/data may import only those before it. schema: what a dataset is;
# store: a prepared directory on disk; memory: the in-memory path (to be removed by issue 22); builtin: built-in
# datasets (raw files + schemas); prepare: the streaming pass; read: readers of prepared data.
DATA_FLOW = ("schema", "store", "memory", "builtin", "prepare", "read")
DATA_SUBPACKAGES = set(DATA_FLOW)
DATA_FLAT_MODULES = {"__init__.py"}


def module_name(path: Path) -> str:
    """Dotted module name of a file under the package root (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(root.rglob("*.py"))}


def absolute_base(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` names (resolving ``from . import x``)."""
    if not node.level:
        return node.module or ""
    package = name if is_package else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


class ImportCollector(ast.NodeVisitor):
    """The tower_zoo modules one module imports, and its private names read from other tower_zoo modules."""

    def __init__(self, name: str, is_package: bool, modules: set[str]):
        self.name, self.is_package, self.modules = name, is_package, modules
        self.edges: set[str] = set()
        self.private: list[str] = []
        self.module_aliases: dict[str, str] = {}

    def _depend(self, target: str) -> None:
        """``target`` and the packages above it that do not hold this module."""
        self.edges.add(target)
        parts = target.split(".")
        for end in range(1, len(parts)):
            package = ".".join(parts[:end])
            if package in self.modules and not (self.name == package or self.name.startswith(package + ".")):
                self.edges.add(package)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in self.modules:
                self._depend(alias.name)
                self.module_aliases[alias.asname or alias.name] = alias.name
                self._check_private(alias.name.rpartition(".")[2], alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = absolute_base(node, self.name, self.is_package)
        if base.split(".")[0] != "tower_zoo":
            return
        for alias in node.names:
            target = f"{base}.{alias.name}"
            if target in self.modules:
                self._depend(target)
                self.module_aliases[alias.asname or alias.name] = target
            elif base in self.modules:
                self._depend(base)
            self._check_private(alias.name, base, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.module_aliases:
            self._check_private(node.attr, self.module_aliases[node.value.id], node)
        self.generic_visit(node)

    def _check_private(self, attr: str, owner: str, node: ast.AST) -> None:
        if attr.startswith("_") and not attr.startswith("__") and owner != self.name:
            self.private.append(f"{self.name}:{node.lineno} uses {owner}.{attr}")


@functools.lru_cache(maxsize=None)
def collect_package() -> dict[str, ImportCollector]:
    """The package's modules, each parsed once for every test here."""
    return collect(package_modules())


def collect(modules: dict[str, Path]) -> dict[str, ImportCollector]:
    """An ImportCollector run over every module."""
    result = {}
    for name, path in modules.items():
        collector = ImportCollector(name, path.name == "__init__.py", set(modules))
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        result[name] = collector
    return result


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing itself): Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_circle_finder_finds_a_circle_and_only_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(import_circles(graph)) == [["a", "b", "c"], ["e"]]


def test_collector_sees_parent_packages_and_private_names():
    modules = {"tower_zoo", "tower_zoo.a", "tower_zoo.a.x", "tower_zoo.a.y", "tower_zoo.b", "tower_zoo.b.z"}
    code = ("from tower_zoo.a.x import _hidden, shown as _alias\n"
            "from tower_zoo.a import y\n"
            "def f():\n"
            "    from tower_zoo.b import z\n"
            "    return y._inner, z.public\n")
    collector = ImportCollector("tower_zoo.b.w", False, modules)
    collector.visit(ast.parse(code))
    assert collector.edges == {"tower_zoo.a", "tower_zoo.a.x", "tower_zoo.a.y", "tower_zoo.b.z"}
    assert collector.private == ["tower_zoo.b.w:1 uses tower_zoo.a.x._hidden", "tower_zoo.b.w:5 uses tower_zoo.a.y._inner"]


def test_no_import_circle():
    collectors = collect_package()
    circles = import_circles({name: c.edges for name, c in collectors.items()})
    assert circles == [], "import circles among tower_zoo modules:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_no_private_name_imported_from_another_module():
    private = [use for c in collect_package().values() for use in c.private]
    assert private == [], "private names used across modules:\n" + "\n".join(private)


def test_data_is_laid_out_in_subpackages():
    data = PACKAGE_ROOT / "data"
    flat = sorted(p.name for p in data.glob("*.py") if p.name not in DATA_FLAT_MODULES)
    assert flat == [], f"modules directly in tower_zoo/data/ (move them into a sub-package): {flat}"
    packages = sorted(p.name for p in data.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert packages == sorted(DATA_SUBPACKAGES)


def test_data_subpackages_import_along_the_flow():
    backwards = []
    for name, collector in collect_package().items():
        parts = name.split(".")
        if len(parts) < 4 or parts[:2] != ["tower_zoo", "data"]:
            continue
        for target in sorted(collector.edges):
            target_parts = target.split(".")
            if len(target_parts) >= 4 and target_parts[:2] == ["tower_zoo", "data"] and \
                    DATA_FLOW.index(target_parts[2]) > DATA_FLOW.index(parts[2]):
                backwards.append(f"{name} imports {target}")
    assert backwards == [], "imports against the data flow " + " -> ".join(DATA_FLOW) + ":\n" + "\n".join(backwards)
