"""The shape of the code (issue 25): no import cycle among the package's modules, scripts use the installed
package, and only the entry point reaches into the run builder."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path) -> set[str]:
    """The ``scyc`` names ``path`` imports anywhere, function bodies included (an import deferred into a function
    still closes a cycle when it runs); only ``if TYPE_CHECKING:`` blocks (never run) are left out."""
    tree = ast.parse(path.read_text())
    inside = path.is_relative_to(SRC)
    package = (
        "" if not inside else module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node) if n not in node.orelse}  # fmt: skip
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("scyc"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            if base.startswith("scyc"):  # ``from scyc import cli``: the module scyc.cli (import_graph resolves)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (SRC / "scyc").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t if t in modules else t.rpartition(".")[0] for t in module_imports(path)}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "scyc.lifecycle.build" in graph["scyc.cli"]  # the walk sees imports inside functions
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_scripts_import_the_installed_package():
    hacks = [p.name for p in (ROOT / "scripts").glob("*.py") if "sys.path.insert" in p.read_text()]
    assert hacks == []


def test_only_the_entry_point_imports_the_run_builder():
    """scyc.lifecycle.build (the run's assembly) is imported by scyc.cli alone; every other module and script builds
    a run through scyc.cli.build_run, and callbacks see it through scyc.lifecycle.callbacks.RunView."""
    importers = sorted(m for m, deps in import_graph().items() if "scyc.lifecycle.build" in deps)
    assert importers == ["scyc.cli"]
    scripts = sorted(p.name for p in (ROOT / "scripts").glob("*.py") if "scyc.lifecycle.build" in module_imports(p))
    assert scripts == []
    loop = (SRC / "scyc" / "lifecycle" / "loop.py").read_text()
    assert "getattr(cb, hook)" not in loop and "hasattr(run.schedule" not in loop  # explicit hooks; policy by type
    assert "latest_start" not in loop  # the measurement is the loop's own step, passed on as an argument
