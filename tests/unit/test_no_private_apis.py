"""No module of raygan reaches into a private part of Ray or MLflow (a Ray or MLflow upgrade may move it).

The modules are parsed, never imported (Ray is not needed). Flagged: an import of a Ray / MLflow module
with a path segment that starts with "_" (``ray._private``, ``ray.air._internal``); a name starting with
"_" imported from Ray / MLflow; and a single-underscore attribute (or getattr/setattr/hasattr of one)
on a Ray / MLflow object, which is: a name bound to a Ray / MLflow import, a parameter named or
annotated as one (``trial``, ``mlflow``, ``trial: "Trial"``...), a name assigned from an expression on
one (``client = MlflowClient(...)``), and in a class with a Ray / MLflow base, what the class inherits
(``self._trial_runs``, ``self.mlflow_util._get_client``), not what it defines itself.
"""
import ast
from pathlib import Path

RAYGAN = Path(__file__).resolve().parents[2] / "raygan"
FOREIGN = ("ray", "mlflow")
# Parameters that hold Ray / MLflow objects in Tune's hooks and raygan's helpers.
FOREIGN_PARAMS = {"ray", "mlflow", "tune", "trial", "trials", "tuner", "mlflow_util"}
FOREIGN_TYPES = {"Trial", "Result", "ResultGrid", "Tuner", "MlflowClient", "Run", "Experiment", "ObjectRef"}
_REFLECTION = ("getattr", "setattr", "hasattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_foreign_module(module: str) -> bool:
    return module.split(".")[0] in FOREIGN


def _root(node: ast.AST):
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _annotation_names(node) -> set[str]:
    if node is None:
        return set()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval")
        except SyntaxError:
            return set()
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _foreign(node, names: set[str], own: set[str] | None) -> bool:
    """Whether an expression is a Ray / MLflow object: rooted at one of ``names`` or, in a class with a
    Ray / MLflow base (``own``: what it defines itself), at an attribute it inherits."""
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute):
        if own is not None and isinstance(node.value, ast.Name) and node.value.id == "self":
            return node.attr not in own
        return _foreign(node.value, names, own)
    if isinstance(node, (ast.Call, ast.Subscript, ast.Starred)):
        return _foreign(node.func if isinstance(node, ast.Call) else node.value, names, own)
    return False


def _bound(target) -> set[str]:
    """The names an assignment target binds (not the bases of ``a.b = ...`` or ``a[i] = ...``)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_bound(t) for t in target.elts))
    if isinstance(target, ast.Starred):
        return _bound(target.value)
    return set()


class _Checker:
    def __init__(self, tree: ast.Module, where: str):
        self.tree, self.where, self.found = tree, where, []

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.where}:{node.lineno}: {what}")

    def imported(self, scope: ast.AST) -> set[str]:
        """Names bound by Ray / MLflow imports in scope (its nested scopes too); flags private imports."""
        names = set()
        for node in ast.walk(scope):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_foreign_module(alias.name):
                        names.add(alias.asname or alias.name.split(".")[0])
                        if any(_private(part) for part in alias.name.split(".")):
                            self.flag(node, f"import {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_foreign_module(node.module or ""):
                if any(_private(part) for part in node.module.split(".")):
                    self.flag(node, f"from {node.module} import ...")
                for alias in node.names:
                    names.add(alias.asname or alias.name)
                    if _private(alias.name):
                        self.flag(node, f"from {node.module} import {alias.name}")
        return names

    def tainted(self, func, names: set[str], own: set[str] | None) -> set[str]:
        """names plus the function's foreign parameters and what is assigned from a foreign expression."""
        names = set(names)
        args = func.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and (arg.arg in FOREIGN_PARAMS or
                                    _annotation_names(arg.annotation) & (FOREIGN_TYPES | names)):
                names.add(arg.arg)
        while True:
            before = len(names)
            for node in ast.walk(func):
                pairs = []
                if isinstance(node, ast.Assign):
                    pairs = [(t, node.value) for t in node.targets]
                elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                    pairs = [(node.target, node.value)]
                elif isinstance(node, (ast.For, ast.comprehension)):
                    pairs = [(node.target, node.iter)]
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    pairs = [(node.optional_vars, node.context_expr)]
                for target, value in pairs:
                    if _foreign(value, names, own):
                        names |= _bound(target)
            if len(names) == before:
                return names

    def check_scope(self, scope: ast.AST, names: set[str], own: set[str] | None) -> None:
        """Private attributes on foreign expressions; ``own``: the attributes of a class with a foreign
        base (None elsewhere), whose other ``self.x`` are inherited from Ray / MLflow."""
        def foreign(node) -> bool:
            return _foreign(node, names, own)

        for node in ast.walk(scope):
            if isinstance(node, ast.Attribute) and _private(node.attr) and foreign(node.value):
                self.flag(node, f"{ast.unparse(node)}")
            elif isinstance(node, ast.Attribute) and _private(node.attr) and own is not None and \
                    isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr not in own:
                self.flag(node, f"self.{node.attr} (inherited from a Ray / MLflow class)")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in _REFLECTION and \
                    len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and \
                    _private(str(node.args[1].value)) and foreign(node.args[0]):
                self.flag(node, f"{ast.unparse(node)}")

    def run(self) -> list[str]:
        module_names = self.imported(self.tree)
        foreign_classes = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(_root(b), ast.Name) and _root(b).id in module_names for b in node.bases):
                foreign_classes[node] = _own_attributes(node)
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                owner = next((c for c, own in foreign_classes.items() if node in c.body), None)
                own = foreign_classes[owner] if owner is not None else None
                self.check_scope(node, self.tainted(node, module_names, own), own)
        module_level = ast.Module(body=[n for n in self.tree.body if not isinstance(
            n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))], type_ignores=[])
        self.check_scope(module_level, module_names, None)
        return sorted(set(self.found))


def _own_attributes(cls: ast.ClassDef) -> set[str]:
    """What a class defines itself: its body's names and methods, and every ``self.x = ...``."""
    own = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in cls.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            own |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    own |= {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
            and isinstance(n.value, ast.Name) and n.value.id == "self"}
    return own


def private_uses(source: str, where: str = "<source>") -> list[str]:
    return _Checker(ast.parse(source), where).run()


def test_no_module_of_raygan_touches_a_private_part_of_ray_or_mlflow():
    found = [hit for path in sorted(RAYGAN.rglob("*.py"))
             for hit in private_uses(path.read_text(), path.relative_to(RAYGAN.parent).as_posix())]
    assert not found, "use Ray's and MLflow's public APIs instead of:\n" + "\n".join(found)


# The shapes the old sweep MLflow callback had (a subclass of Ray's MLflowLoggerCallback), and others.
_BAD = '''
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air._internal.mlflow import _MLflowLoggerUtil
from ray._private.dict import flatten_dict
import ray._private.utils
from mlflow.tracking import _get_store

class Logger(MLflowLoggerCallback):
    def log_trial_start(self, trial):
        if trial not in self._trial_runs:
            self._mine = 1
        client = self.mlflow_util._get_client()
        client._tracking_client.log_batch()
        trial._state = getattr(trial, "_status", None)

def ensure(mlflow, cfg):
    return mlflow.tracking._get_store()
'''
_GOOD = '''
from __future__ import annotations
import mlflow
from ray.tune.logger import LoggerCallback

class Logger(LoggerCallback):
    def __init__(self):
        self._client, self._runs = None, {}

    def _open(self):
        return self._client

    def log_trial_start(self, trial: "Trial"):
        self._runs[trial.trial_id] = self._open().search_runs([mlflow.__version__])

def plain(run, rows):
    return run._private_of_raygan, rows._asdict()
'''


def test_the_check_flags_private_uses_and_only_those():
    found = private_uses(_BAD)
    for what in ("from ray.air._internal.mlflow import", "from ray.air._internal.mlflow import _MLflowLoggerUtil",
                 "from ray._private.dict import", "import ray._private.utils", "import _get_store",
                 "self._trial_runs", "self.mlflow_util._get_client", "client._tracking_client",
                 "trial._state", "getattr(trial, '_status', None)", "mlflow.tracking._get_store"):
        assert any(what in hit for hit in found), (what, found)
    assert not any("_mine" in hit for hit in found), found  # the subclass's own attribute
    assert private_uses(_GOOD) == []
