"""The import graph of raygan, read from the source with ``ast`` (nothing is imported): the config is
the bottom layer (it imports no stage), and no two modules import each other, directly or round a
circle, at module level or inside a function."""
import ast
from pathlib import Path

RAYGAN = Path(__file__).resolve().parents[2] / "raygan"


def _module_name(path: Path) -> str:
    parts = path.relative_to(RAYGAN.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(RAYGAN.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """Every node, less what sits under ``if TYPE_CHECKING:`` (never executed, so never a circle)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _target(name: str) -> str | None:
    """The module of ours that ``name`` (a dotted module path) names, or None for a foreign one."""
    return name if name in MODULES else None


def imports_of(module: str, source: str | None = None) -> dict[str, int]:
    """Every raygan module that ``module`` (its ``source``, else its file) imports, function-level
    imports included, with the line of the first import.

    ``from raygan.x import y`` imports raygan.x.y where that is a module, else raygan.x (its
    ``__init__``); a relative import is resolved against ``module``'s package. The parents that Python
    also runs on the way (raygan, raygan.x) are not edges: they are loaded before the module itself."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in _runtime_nodes(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (t := _target(alias.name)) is not None:
                    found.setdefault(t, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if not base.split(".")[0] == "raygan":
                continue
            for alias in node.names:
                t = _target(f"{base}.{alias.name}") or _target(base)
                if t is not None:
                    found.setdefault(t, node.lineno)
    found.pop(module, None)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def _leaves() -> frozenset[str]:
    """The top-level helper modules (raygan/<name>.py) that import no stage: nothing of raygan, or only
    other such helpers (raygan.logs imports raygan.secrets). The config may import these."""
    top = {m for m, p in MODULES.items() if p.parent == RAYGAN and p.name != "__init__.py"}
    leaves = top - {"raygan.cli", "raygan.__main__"}
    while bad := {m for m in leaves if not set(GRAPH[m]) <= leaves}:
        leaves -= bad
    return frozenset(leaves)


LEAVES = _leaves()


def _find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One circle of the graph (its first module repeated at the end), or None; depth first, iterative."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path, iters = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph[nxt])))
    return None


def test_the_graph_sees_imports_inside_functions_and_relative_ones():
    source = """
from typing import TYPE_CHECKING
import numpy
from raygan.runs import RunFolder
from raygan import seeds, provenance
from . import storage
from ..config import schema
if TYPE_CHECKING:
    from raygan.gan.models import build_gan

def f():
    import raygan.data.base
    from raygan.runs.manifest import read_manifest
"""
    assert imports_of("raygan.runs.folder", source) == {
        "raygan.runs": 4, "raygan.seeds": 5, "raygan": 5, "raygan.runs.storage": 6,
        "raygan.config.schema": 7, "raygan.data.base": 12, "raygan.runs.manifest": 13}
    assert imports_of("raygan.runs", "from . import folder") == {"raygan.runs.folder": 1}
    cli = GRAPH["raygan.cli"]
    assert "raygan.config" in cli  # module level: from raygan.config import ...
    # a function-level import is an edge: raygan.cli imports every command's module inside its function
    assert any(m.startswith("raygan.reporting") for m in cli), sorted(cli)
    assert _find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": 1}, "b": {}}) is None


def _config_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    """Every import by a raygan.config module of something that is neither config nor a leaf helper."""
    allowed = ("raygan.config", *sorted(LEAVES))
    return [f"{m} line {line}: imports {t}" for m in graph if m == "raygan.config" or
            m.startswith("raygan.config.") for t, line in graph[m].items()
            if not any(t == a or t.startswith(a + ".") for a in allowed)]


def test_the_config_imports_no_stage():
    assert {"raygan.seeds", "raygan.secrets"} <= LEAVES  # the helpers a config rule may use
    assert not {"raygan.cli", "raygan.tracking", "raygan"} & LEAVES
    tampered = {**GRAPH, "raygan.config.checks": {**GRAPH["raygan.config.checks"], "raygan.gan.models": 9}}
    assert _config_violations(tampered) == ["raygan.config.checks line 9: imports raygan.gan.models"]
    bad = _config_violations(GRAPH)
    assert not bad, "the config is the bottom layer (DESIGN.md 17); move the rule into raygan.config: " \
                    + "; ".join(bad)


def test_no_import_cycle():
    cycle = _find_cycle(GRAPH)
    if cycle:
        steps = [f"{a} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("import cycle: " + " -> ".join(steps + [cycle[-1]]) + "; move the shared "
                             "piece down into a module both import (not a lazy import)")
