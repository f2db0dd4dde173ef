"""House style that a reader relies on: small modules and functions, the core free of Ray and print."""
import ast
from pathlib import Path

RAYGAN = Path(__file__).resolve().parents[2] / "raygan"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
CORE = [p for p in RAYGAN.rglob("*.py") if "cluster" not in p.relative_to(RAYGAN).parts]


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, node.end_lineno - node.lineno + 1


def test_no_module_over_400_lines():
    long = {p.relative_to(RAYGAN).as_posix(): n for p in RAYGAN.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules by responsibility: {long}"


def test_no_function_over_80_lines():
    long = {f"{p.relative_to(RAYGAN).as_posix()}:{f.name}": n for p in RAYGAN.rglob("*.py")
            for f, n in _functions(p) if n > MAX_FUNCTION_LINES}
    assert not long, f"split these functions: {long}"


def test_the_core_neither_imports_ray_nor_prints():
    offenders = []
    for p in CORE:
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ray" for a in node.names):
                offenders.append(f"{p.name}: import ray")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
                offenders.append(f"{p.name}: from {node.module}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" \
                    and p.name not in ("cli.py",):
                offenders.append(f"{p.relative_to(RAYGAN)}:{node.lineno}: print")
    assert not offenders, offenders

