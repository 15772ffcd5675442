"""The package's shape: its import graph is a DAG (every import counts, lazy ones inside functions too)."""

import ast
from pathlib import Path

import autoinit

ROOT = Path(autoinit.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the autoinit modules it imports (``from autoinit.x import y`` counts as x, or x.y when y
    is a module)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        # a package's __init__ is not a dependency of its own submodules' siblings through the package name
        graph[name] = {d for d in deps if not (d == "autoinit" or name.startswith(d + "."))}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# The tuner's layers, in order: a module of one imports only its own layer's modules and earlier layers'.
# Modules at the top of autoinit.tuner (run, api, reuse) are the entry points, after every layer.
TUNER_LAYERS = [
    "common",
    "records",
    "sources",
    "storage",
    "search",
    "study",
    "trials",
    "population",
    "execution",
    "report",
]


def tuner_layer(module: str) -> int | None:
    """The layer of an ``autoinit.tuner`` module (``len(TUNER_LAYERS)`` for the entry points), else None."""
    parts = module.split(".")
    if parts[:2] != ["autoinit", "tuner"]:
        return None
    if len(parts) > 3 and parts[2] in TUNER_LAYERS:
        return TUNER_LAYERS.index(parts[2])
    if len(parts) == 3 and parts[2] in TUNER_LAYERS:  # a layer's package (its __init__)
        return TUNER_LAYERS.index(parts[2])
    return len(TUNER_LAYERS)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in sorted(graph.items()):
        layer = tuner_layer(module)
        if layer is None:
            continue
        for dep in sorted(deps):
            dep_layer = tuner_layer(dep)
            if dep_layer is not None and dep_layer > layer:
                bad.append(f"{module} ({TUNER_LAYERS[layer] if layer < len(TUNER_LAYERS) else 'entry'}) imports {dep}")
    return bad


def test_layer_violations_finds_an_import_upwards():
    graph = {
        "autoinit.tuner.records.record": {"autoinit.tuner.search.space"},
        "autoinit.tuner.run": {"autoinit.tuner.report.result"},
    }
    assert layer_violations(graph) == ["autoinit.tuner.records.record (records) imports autoinit.tuner.search.space"]


def test_tuner_modules_live_in_layers():
    flat = {p.stem for p in (ROOT / "tuner").glob("*.py")}
    assert flat == {"__init__", "_moved", "api", "reuse", "run"}
    assert {p.name for p in (ROOT / "tuner").iterdir() if p.is_dir() and p.name != "__pycache__"} == set(TUNER_LAYERS)


def test_tuner_layers_import_only_earlier_layers():
    assert layer_violations(import_graph()) == []
