"""The package's layout holds: no import circle, imports only go down the layers, no outsized module, one CLI package.

Read from the sources (every ``import`` statement, at module level or inside a function), so that a circle or
an upward import that only runs late is found as well."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "microsam_fiji"
# a module's size follows its concept; this only catches a real outlier (a module that has grown several concepts)
MAX_LINES = 900
# folders are layers; a module may import its own layer's folders only where the graph stays acyclic, and the
# layers below it (entry points -> command / batch / zoo -> engines / models / rois -> core)
LAYERS = {
    "cli": 3, "imagej": 3, "worker": 3, "installer": 3,
    "command": 2, "batch": 2, "zoo": 2, "training": 2,
    "engines": 1, "models": 1, "rois": 1,
    "core": 0,
}
# the package's face (microsam_fiji/__init__.py) re-exports the public functions: it sits above everything
FACE = 4


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports (``from a.b import c`` names module a.b.c where it exists)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package uses absolute imports")
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        # importing a.b.c runs a/__init__ and a/b/__init__ too, but those are not edges of this module's code
        graph[name] = _imports(path, modules) - {name}
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return FACE
    if parts[1] == "demo":
        return 0
    return LAYERS[parts[1]]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    graph = _graph()
    assert len(graph) > 40 and sum(len(v) for v in graph.values()) > 80  # the reader sees the real imports
    assert "microsam_fiji.engines.segment" in graph["microsam_fiji.command.execute"]


def test_no_import_circle():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_go_down_the_layers():
    upward = [f"{a} -> {b}" for a, targets in _graph().items() for b in sorted(targets)
              if _layer(b) > _layer(a) and not b.split(".")[:2] == a.split(".")[:2]]
    assert upward == []


def test_layers_know_every_folder():
    folders = {p.name for p in (SRC / PACKAGE).iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders - {"demo"} == set(LAYERS)


def test_no_module_is_an_outlier():
    sizes = {str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines())
             for p in (SRC / PACKAGE).rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_sub_commands_live_in_one_package():
    registering = sorted(_module_name(p) for p in (SRC / PACKAGE).rglob("*.py")
                         if "def register(sub" in p.read_text(encoding="utf-8"))
    assert registering and all(name.startswith(f"{PACKAGE}.cli.") for name in registering)


def test_no_top_level_name_shadows_pypi():
    assert not (SRC / "packaging").exists() and not (SRC / PACKAGE / "packaging").exists()


def test_the_packaged_network_has_no_type_comments():
    """zoo/architecture.py is compiled by TorchScript in every package, which reads ``# type:`` comments as
    annotations (a ``# type: ignore`` once broke the TorchScript weights)."""
    assert "# type:" not in (SRC / PACKAGE / "zoo" / "architecture.py").read_text(encoding="utf-8")
