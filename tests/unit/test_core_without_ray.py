"""Design principle 5: the core runs without Ray; importing any core module must not import ray."""
import subprocess
import sys
from pathlib import Path

RAYGAN = Path(__file__).resolve().parents[2] / "raygan"


def core_modules() -> list[str]:
    """Every module of raygan outside raygan/cluster/ (the only package allowed to import ray)."""
    names = []
    for path in sorted(RAYGAN.rglob("*.py")):
        parts = path.relative_to(RAYGAN.parent).with_suffix("").parts
        if "cluster" in parts:
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_importing_every_core_module_does_not_import_ray():
    modules = core_modules()
    assert {"raygan.ensemble.boosting", "raygan.synthesis.records", "raygan.evaluation.curves",
            "raygan.classifiers.fit", "raygan.sweeps.classifier", "raygan.sweeps.gan", "raygan.audit.run",
            "raygan.cli"} <= set(modules)
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "assert 'ray' not in sys.modules, 'the core imported ray'\n"
            "print('ok', len(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_the_stage_packages_import_with_ray_unimportable():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import raygan.ensemble, raygan.synthesis, raygan.classifiers, raygan.evaluation, raygan.sweeps, "
            "raygan.audit\n"
            "import raygan.ensemble.members, raygan.synthesis.records, raygan.classifiers.fit, "
            "raygan.evaluation.curves, raygan.sweeps.classifier, raygan.sweeps.gan, raygan.audit.run, "
            "raygan.reporting.report\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
