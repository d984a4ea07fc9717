"""No module of awmp imports one that imports it back, lazy imports included.

The graph is read from the source with `ast`: every `import awmp.x` / `from awmp.x import y` /
`from awmp import x` anywhere in a module (inside functions too) is an edge, except those under
`if TYPE_CHECKING:` (never executed). A submodule's implicit import of its parent package does
not count; an explicit one (`from awmp import __version__`) does.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(src: Path = SRC) -> dict[str, Path]:
    mods = {}
    for path in sorted((src / "awmp").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except those inside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the awmp modules it imports (its own name excluded)."""
    mods = _modules(src)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for a in node.names:  # `from awmp import x`: the submodule x when there is one
                    deps.add(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else known(base))
        graph[mod] = {d for d in deps if d and d != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules, first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return [*path[path.index(d) :], d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert {"awmp.cli", "awmp.sweep", "awmp.sweep.ray", "awmp.experiment"} <= set(graph)
    assert "awmp.cli_train" in graph["awmp.sweep.cell"]  # lazy imports are read
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_ray_backend_imports_ray():
    importers = []
    for mod, path in _modules().items():
        for node in _runtime_nodes(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n == "ray" or n.startswith("ray.") for n in names):
                importers.append(mod)
    assert sorted(set(importers)) == ["awmp.sweep.ray"]
